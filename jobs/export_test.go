package jobs

// The record-level server is internal; its tests and benchmark reach it
// under these names.
type (
	RecordServer       = recordServer
	RecordServerConfig = recordServerConfig
)

var NewRecordServer = newRecordServer
