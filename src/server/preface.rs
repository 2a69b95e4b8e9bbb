//! The first bytes of a connection: the HTTP/2 client preface, read by Tessera (under
//! `--connection-preface-timeout`) before hyper sees the connection.
//!
//! hyper's HTTP/2 server has no timeout for the preface: its keepalive pings start only
//! after the handshake, so a peer that connects and sends nothing holds its descriptor
//! (and its `--max-connections` slot) for as long as it likes. Rather than wrap every
//! read of the connection in a timer, the listener reads the preface itself, once: the
//! 24-byte magic and the header of the frame that must follow it (the client's
//! SETTINGS), so a peer that sends a few bytes and stalls is caught too. The bytes read
//! are then put back in front of the stream ([`Rewind`]) and hyper parses them as if it
//! had read them itself: a wrong preface is still hyper's to refuse, as before.
//!
//! Reading (not peeking with `MSG_PEEK`) works the same on a TLS stream, and returns
//! as soon as the bytes are there: a peek cannot wait for more than what has arrived.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// What a client sends first on an HTTP/2 connection (RFC 9113 §3.4).
pub const CLIENT_MAGIC: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The magic and the 9-byte header of the client's first frame.
const PREFACE_LEN: usize = CLIENT_MAGIC.len() + 9;

/// Reads the client preface from `io`: until [`PREFACE_LEN`] bytes have come, the
/// bytes stop matching the magic (hyper will refuse them), or the peer closes. The
/// caller bounds the time, and keeps `io` (to close it when it sees fit).
pub async fn read<IO: AsyncRead + Unpin>(io: &mut IO) -> io::Result<Preface> {
    let mut bytes = [0u8; PREFACE_LEN];
    let mut len = 0;
    while len < PREFACE_LEN {
        let n = io.read(&mut bytes[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
        let magic = len.min(CLIENT_MAGIC.len());
        if bytes[..magic] != CLIENT_MAGIC[..magic] {
            break;
        }
    }
    Ok(Preface { bytes, len })
}

/// The first bytes read from a connection.
#[derive(Debug)]
pub struct Preface {
    bytes: [u8; PREFACE_LEN],
    len: usize,
}

impl Preface {
    /// `io` with these bytes in front of what has not been read from it yet.
    pub fn put_back<IO>(self, io: IO) -> Rewind<IO> {
        Rewind { prefix: self.bytes, start: 0, end: self.len, inner: io }
    }
}

/// A stream with bytes already read from it put back in front.
#[derive(Debug)]
pub struct Rewind<IO> {
    prefix: [u8; PREFACE_LEN],
    /// The unread part of `prefix` is `start..end`.
    start: usize,
    end: usize,
    inner: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.start < self.end {
            let n = buf.remaining().min(self.end - self.start);
            buf.put_slice(&self.prefix[self.start..self.start + n]);
            self.start += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn the_preface_is_read_whole_and_given_back_before_the_rest() {
        let (mut client, server) = tokio::io::duplex(1024);
        let settings_header = [0, 0, 0, 4, 0, 0, 0, 0, 0];
        // In pieces, as a slow network delivers it.
        client.write_all(&CLIENT_MAGIC[..10]).await.unwrap();
        let reading = tokio::spawn(async move {
            let mut server = server;
            let preface = read(&mut server).await.unwrap();
            preface.put_back(server)
        });
        client.write_all(&CLIENT_MAGIC[10..]).await.unwrap();
        client.write_all(&settings_header).await.unwrap();
        client.write_all(b"after").await.unwrap();
        drop(client);
        let mut rewound = reading.await.unwrap();
        let mut all = Vec::new();
        rewound.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, [&CLIENT_MAGIC[..], &settings_header, b"after"].concat());
    }

    #[tokio::test]
    async fn bytes_that_are_not_a_preface_are_handed_on_at_once() {
        let (mut client, server) = tokio::io::duplex(1024);
        // An HTTP/1.1 request line: shorter than a preface; reading must not wait for more.
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut server = server;
        let mut rewound = read(&mut server).await.unwrap().put_back(server);
        let mut start = [0u8; 16];
        rewound.read_exact(&mut start).await.unwrap();
        assert_eq!(&start, b"GET / HTTP/1.1\r\n");
    }
}
