package stream

// DocumentKeyOf is Process's default key. Tests only.
var DocumentKeyOf = documentKeyOf
