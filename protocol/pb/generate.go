// Package pb holds the generated protobuf types of the jbc chain protocol.
// The source is jbc.proto; the generated jbc.pb.go is committed so that
// building needs no protoc. Package protocol validates every message; use
// these types through it.
package pb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative jbc.proto
