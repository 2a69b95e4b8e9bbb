
¨ ê(Ä2	sub/b.tif2a.tif:@HPZ