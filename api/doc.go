// Package api holds the golden files of ordo's exported API; see api_test.go.
package api
