package unified

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Target describes the deployment the tests run against, for
// runOnRequirements.
type Target struct {
	// Version is the server version, such as "8.2.1".
	Version string
	// Topology is "single", "replicaset", "sharded" or "load-balanced".
	Topology string
}

// unmet returns why no requirement of reqs is met, or "" when one is (or
// reqs is empty).
func (tg Target) unmet(reqs []Requirement) string {
	if len(reqs) == 0 {
		return ""
	}
	var why []string
	for _, r := range reqs {
		reason := tg.unmetOne(r)
		if reason == "" {
			return ""
		}
		why = append(why, reason)
	}
	return strings.Join(why, "; or ")
}

func (tg Target) unmetOne(r Requirement) string {
	if r.MinServerVersion != "" && compareVersions(tg.Version, r.MinServerVersion) < 0 {
		return fmt.Sprintf("requires server >= %s, have %s", r.MinServerVersion, tg.Version)
	}
	if r.MaxServerVersion != "" && compareVersions(tg.Version, r.MaxServerVersion) > 0 {
		return fmt.Sprintf("requires server <= %s, have %s", r.MaxServerVersion, tg.Version)
	}
	if len(r.Topologies) > 0 && !slices.Contains(r.Topologies, tg.Topology) {
		return fmt.Sprintf("requires topology %s, have %s", strings.Join(r.Topologies, "/"), tg.Topology)
	}
	if r.Serverless == "require" {
		return "requires serverless"
	}
	if r.Auth != nil && *r.Auth {
		return "requires auth"
	}
	if len(r.ServerParameters) > 5 {
		return "requires server parameters"
	}
	if r.CSFLE != nil && *r.CSFLE {
		return "requires CSFLE"
	}
	return ""
}

// compareVersions compares dotted versions; missing components are 0.
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}
