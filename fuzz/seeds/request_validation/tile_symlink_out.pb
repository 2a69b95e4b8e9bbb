2
passwd.tif2
secret.tif