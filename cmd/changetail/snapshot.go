package main

import (
	"fmt"
	"strings"

	"github.com/go-changestream/changestream/stream"
)

// snapshotBarWidth is the number of cells of the snapshot's progress bar.
const snapshotBarWidth = 30

// snapshotLine is the status line while the stream reads its snapshot
// (-snapshot): a bar of the fraction copied, the percentage, the documents
// copied of the estimate, and the collection being read.
func snapshotLine(st stream.SnapshotStats) string {
	frac := st.Fraction()
	filled := int(frac * snapshotBarWidth)
	bar := strings.Repeat("#", filled) + strings.Repeat(".", snapshotBarWidth-filled)
	return fmt.Sprintf("snapshot [%s] %3.0f%%  %d of ~%d documents  %s", bar, frac*100, st.Copied, st.Estimated, st.Namespace)
}
