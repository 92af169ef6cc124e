//go:build !linux

package disk

// freeSpace cannot tell the free space here: a paused store is retried
// when its backoff ends (storageRetryMax at most).
func freeSpace(string) (uint64, bool) { return 0, false }
