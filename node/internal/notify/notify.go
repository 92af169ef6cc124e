// Package notify lets goroutines wait for the next time something
// happens: the best chain changes, an entry joins the data pool.
//
// What it does not do: say what happened, or count how often; a waiter
// looks for itself once woken.
//
// Error contract: nothing here fails.
package notify

import "sync"

// Watch lets goroutines wait for its next Fire. The zero Watch is ready
// to use; it is safe for concurrent use.
type Watch struct {
	mu sync.Mutex
	ch chan struct{}
}

// Wait returns a channel closed at the next Fire.
func (w *Watch) Wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	return w.ch
}

// Fire wakes every goroutine waiting on a channel from Wait.
func (w *Watch) Fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ch != nil {
		close(w.ch)
	}
	w.ch = make(chan struct{})
}
