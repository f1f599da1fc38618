package jobs

import "github.com/ordo-go/ordo/internal/run"

// The record-level server is internal; its tests and benchmark reach it
// under these names.
type (
	RecordServer       = run.Member
	RecordServerConfig = run.Config
)

var NewRecordServer = run.New
