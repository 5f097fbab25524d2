// Package doccheck holds no code: its tests check that README.md and
// docs/ agree with the code they show (the README's example is the code of
// stream's ExampleStream_All, its test command is the one .ci/run runs,
// every relative link leads to a file, and every Go snippet of
// docs/testing.md is a whole test file that builds and passes on its own,
// in a scratch module of its own).
package doccheck
