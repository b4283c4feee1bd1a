// The home page at /: sign in, then every page this person's roles may open, with their tasks there.
"use strict";
ImagingShell.start({ page: "home", main: "#home" });
