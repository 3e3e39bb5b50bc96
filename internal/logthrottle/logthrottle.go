// Package logthrottle bounds how many log lines one kind of record can
// write. A Handler wraps a slog.Handler: of the records of one kind (the same
// level and message) at Warn or above, it lets the first Burst of each
// Interval through and drops the rest. When that interval has ended, one
// line with the same level and message and a "repeated" attribute says how
// many it dropped: at the next record of that kind, or, if none comes, after
// Interval of real time, or at Close.
//
// It stands in front of the sidecar's JSON handler, so that a flood of
// refused requests or failed answers costs a few lines per interval instead
// of megabytes a second. Debug and Info records pass unthrottled: they are
// not written per request in bulk, and a level filter is the way to silence
// them. Only logs are touched: whatever counts the dropped events (metrics)
// still counts them all.
package logthrottle

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Config configures a Handler.
type Config struct {
	// Burst is how many records of one kind pass in each interval. If zero, 10.
	Burst int
	// Interval is the length of a window, which starts at the first record of
	// a kind and ends Interval later. If zero, 10s.
	Interval time.Duration
	// Now tells the time windows are measured on. If nil, time.Now. The
	// summary of a kind that went quiet is written after Interval of real
	// time whatever Now says.
	Now func() time.Time
}

// maxKinds bounds the windows held: messages are constants in code, so a
// process has a few dozen kinds. Past this, windows that ended with nothing
// dropped are forgotten, and if that makes no room, the new kinds of a level
// share one window, whose summary has the message overflowMsg.
const maxKinds = 1024

const overflowMsg = "logthrottle: records of more kinds than it tracks"

// Handler is a slog.Handler that throttles what it passes to another one.
// It is safe for concurrent use. Handlers made by WithAttrs and WithGroup
// share its windows: a kind is throttled across all of them.
type Handler struct {
	inner slog.Handler
	s     *state
}

// state is what a Handler and those derived from it share.
type state struct {
	cfg  Config
	base slog.Handler // summaries are written here, without derived attributes or groups

	mu     sync.Mutex
	kinds  map[kind]*window
	closed bool
}

type kind struct {
	level slog.Level
	msg   string
}

// window is one kind's current interval.
type window struct {
	start   time.Time
	passed  int
	dropped int
	timer   *time.Timer // while dropped > 0: writes the summary if no record comes first
}

// New returns a Handler passing records to inner. Close it to write the
// summaries still pending.
func New(inner slog.Handler, cfg Config) *Handler {
	if cfg.Burst <= 0 {
		cfg.Burst = 10
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Handler{inner: inner, s: &state{cfg: cfg, base: inner, kinds: map[kind]*window{}}}
}

// Enabled reports whether the wrapped handler handles records at level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// Handle passes r on unless its kind has used up its interval's burst. It
// first writes the summary of the kind's previous interval, if records were
// dropped in it.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.inner.Handle(ctx, r)
	}
	s := h.s
	now := s.cfg.Now()
	k := kind{r.Level, r.Message}
	s.mu.Lock()
	w := s.kinds[k]
	if w == nil && len(s.kinds) >= maxKinds && !s.sweepLocked(now) {
		k = kind{r.Level, overflowMsg}
		w = s.kinds[k]
	}
	if w == nil {
		w = &window{start: now}
		s.kinds[k] = w
	}
	dropped := 0
	if now.Sub(w.start) >= s.cfg.Interval || now.Before(w.start) { // a clock set back starts afresh
		dropped = w.end()
		w = &window{start: now}
		s.kinds[k] = w
	}
	pass := w.passed < s.cfg.Burst
	if pass {
		w.passed++
	} else {
		w.dropped++
		if w.dropped == 1 && !s.closed {
			w.timer = time.AfterFunc(s.cfg.Interval-now.Sub(w.start), func() { s.expire(k, w) })
		}
	}
	s.mu.Unlock()

	var err error
	if dropped > 0 {
		err = s.summary(ctx, now, k, dropped)
	}
	if pass {
		if e := h.inner.Handle(ctx, r); e != nil {
			err = e
		}
	}
	return err
}

// end stops w's timer and returns how many records it dropped. A timer
// already running finds w replaced and does nothing.
func (w *window) end() int {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	return w.dropped
}

// sweepLocked forgets the windows that have ended with nothing dropped, and
// reports whether that made room. s.mu is held.
func (s *state) sweepLocked(now time.Time) bool {
	for k, w := range s.kinds {
		if w.dropped == 0 && now.Sub(w.start) >= s.cfg.Interval {
			delete(s.kinds, k)
		}
	}
	return len(s.kinds) < maxKinds
}

// expire is the timer of a window that dropped records: if no record of its
// kind has ended it since, it ends now, with its summary.
func (s *state) expire(k kind, w *window) {
	s.mu.Lock()
	if s.kinds[k] != w || w.dropped == 0 || s.closed {
		s.mu.Unlock()
		return
	}
	delete(s.kinds, k) // the next record of this kind starts a new window
	n := w.dropped
	s.mu.Unlock()
	s.summary(context.Background(), s.cfg.Now(), k, n)
}

// summary writes one record saying how many of kind k were dropped.
func (s *state) summary(ctx context.Context, now time.Time, k kind, n int) error {
	r := slog.NewRecord(now, k.level, k.msg, 0)
	r.AddAttrs(slog.Int("repeated", n))
	return s.base.Handle(ctx, r)
}

// WithAttrs returns a Handler whose records carry attrs, throttled together
// with h's.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{inner: h.inner.WithAttrs(attrs), s: h.s}
}

// WithGroup returns a Handler whose attributes go in the group name,
// throttled together with h's.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), s: h.s}
}

// Close writes the summaries of the records dropped so far and stops the
// timers. Records handled after Close are still throttled, and their
// summaries written at the next record of their kind only.
func (h *Handler) Close() error {
	s := h.s
	now := s.cfg.Now()
	s.mu.Lock()
	s.closed = true
	type pending struct {
		k kind
		n int
	}
	var out []pending
	for k, w := range s.kinds {
		if w.timer != nil {
			w.timer.Stop()
			w.timer = nil
		}
		if w.dropped > 0 {
			out = append(out, pending{k, w.dropped})
			w.dropped = 0
		}
	}
	s.mu.Unlock()
	var err error
	for _, p := range out {
		if e := s.summary(context.Background(), now, p.k, p.n); e != nil {
			err = e
		}
	}
	return err
}
