package l2

import (
	"context"
	"fmt"
)

// DeleteCurrent deletes market's current snapshot, so that the next read of
// it misses; last_good, the meta key and the refresh lock are left as they
// are (last_good stays the deployment's fallback, and meta keeps Put from
// storing an older snapshot). Deleting a key that is absent is no error. It
// takes at most WriteTimeout; a Redis error is returned, not logged.
func (s *Store) DeleteCurrent(ctx context.Context, market string) error {
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	if err := s.rdb.Del(ctx, s.prefix+CurrentKey(market)).Err(); err != nil {
		return fmt.Errorf("l2 delete %q: %w", CurrentKey(market), err)
	}
	return nil
}
