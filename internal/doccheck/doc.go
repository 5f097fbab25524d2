// Package doccheck holds no code: its tests check that README.md and
// docs/ agree with the code they show (the README's example is the code of
// stream's ExampleStream_All, its test command is the one .ci/run runs,
// and every relative link leads to a file).
package doccheck
