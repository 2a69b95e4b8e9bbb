
	2a.tif
 (@2	sub/b.tif:
2dangling.tif