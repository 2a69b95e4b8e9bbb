
WorldCRS84Quad (€2	inner.tifH