"""``ovseg demo``: a local web app to segment images among any words and to browse the mined pairs."""
