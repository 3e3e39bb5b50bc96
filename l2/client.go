package l2

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ClientOptions is a parsed Redis URL: the options of the one deployment form it
// names. Exactly one field is set.
type ClientOptions struct {
	// Single is a single server (redis.NewClient).
	Single *redis.Options
	// Cluster is a Redis Cluster (redis.NewClusterClient).
	Cluster *redis.ClusterOptions
	// Failover is a master found through Redis Sentinel (redis.NewFailoverClient).
	Failover *redis.FailoverOptions
}

// ParseURL parses a Redis URL (REDIS_URL) in one of three forms, chosen by its
// query parameters:
//
//   - a single server: redis://[user:password@]host:port[/db], or rediss:// for
//     TLS, as redis.ParseURL reads it;
//   - a Redis Cluster: the same with one or more addr=host:port parameters, the
//     seed nodes besides host:port (as redis.ParseClusterURL reads it), or with
//     cluster=true to name host:port as the only seed (a managed cluster's
//     configuration endpoint). A cluster has only database 0;
//   - Redis Sentinel: master_name=NAME, where host:port and the addr= parameters
//     are the sentinels, as redis.ParseFailoverURL reads it, except that the user
//     and password of the URL are those of the master and its replicas (as in
//     the other forms). The sentinels' own credentials are not in the URL: the
//     sentinels are asked without any unless [ClientOptions.SetSentinelAuth]
//     sets them (for sentinels with requirepass, or an ACL user). The
//     failover client writes to the master only: route_by_latency,
//     route_randomly and replica_only are refused.
//
// Other query parameters are go-redis' own (dial_timeout=2s, pool_size=20, …);
// an unknown one is an error. ContextTimeoutEnabled is always set, for a
// [Store] bounds each call by its context's deadline. Credentials are taken
// from the URL's user info only: username= and password= parameters are
// refused, and so are sentinel_username= and sentinel_password=, which a query
// string is no place for either.
// An empty URL is an error (the caller decides that empty means no Redis).
// No error holds the URL's password.
func ParseURL(rawURL string) (*ClientOptions, error) {
	o, err := parseURL(rawURL)
	if err != nil {
		return nil, errors.New(redact(err.Error(), rawURL))
	}
	return o, nil
}

// parseURL is ParseURL, with errors that may quote parts of rawURL.
func parseURL(rawURL string) (*ClientOptions, error) {
	if rawURL == "" {
		return nil, errors.New("redis url: empty")
	}
	if !strings.Contains(rawURL, "://") {
		return nil, errors.New("redis url: want redis://host:port or rediss://host:port")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // which does not repeat the URL
		}
		return nil, fmt.Errorf("redis url: not a URL: %w", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("redis url: scheme %q, want redis:// or rediss://", u.Scheme)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("redis url: query: %v", err)
	}
	for _, name := range []string{"username", "password", "sentinel_username", "sentinel_password"} {
		if q.Has(name) {
			return nil, fmt.Errorf("redis url: parameter %s: credentials belong in the user info (redis://user:password@host:port), not the query", name)
		}
	}
	if q.Has("context_timeout_enabled") {
		return nil, errors.New("redis url: parameter context_timeout_enabled: always true here, leave it out")
	}
	// go-redis panics on a pool size beyond int32.
	for _, name := range []string{"pool_size", "min_idle_conns", "max_idle_conns", "max_active_conns"} {
		if v := q.Get(name); v != "" {
			if _, err := strconv.ParseInt(v, 10, 32); err != nil {
				return nil, fmt.Errorf("redis url: %s=%q, want an integer up to %d", name, v, math.MaxInt32)
			}
		}
	}

	cluster, explicit := false, q.Has("cluster")
	if explicit {
		switch v := q.Get("cluster"); v {
		case "true", "1":
			cluster = true
		case "false", "0":
		default:
			return nil, fmt.Errorf("redis url: cluster=%q, want true or false", v)
		}
		q.Del("cluster")
		u.RawQuery = q.Encode()
	}
	switch {
	case q.Has("master_name"):
		if q.Get("master_name") == "" {
			return nil, errors.New("redis url: master_name is empty, want the name the sentinels monitor the master under")
		}
		if cluster {
			return nil, errors.New("redis url: both cluster=true and master_name: a URL names a Redis Cluster or a Sentinel deployment, not both")
		}
		return parseFailover(u)
	case cluster || (q.Has("addr") && !explicit):
		return parseCluster(u, q)
	case q.Has("addr"):
		return nil, errors.New("redis url: addr= with cluster=false: addr= lists cluster seed nodes (or sentinels, with master_name)")
	default:
		return parseSingle(u)
	}
}

func parseSingle(u *url.URL) (*ClientOptions, error) {
	o, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, redisError("single server", err)
	}
	o.ContextTimeoutEnabled = true
	return &ClientOptions{Single: o}, nil
}

func parseCluster(u *url.URL, q url.Values) (*ClientOptions, error) {
	switch strings.Trim(u.Path, "/") {
	case "", "0":
	default:
		return nil, fmt.Errorf("redis url (cluster): database %q: a Redis Cluster has only database 0", strings.Trim(u.Path, "/"))
	}
	if db := q.Get("db"); q.Has("db") && db != "0" {
		return nil, fmt.Errorf("redis url (cluster): db=%q: a Redis Cluster has only database 0", db)
	}
	q.Del("db")
	// redis.ParseClusterURL knows no skip_verify, which the other forms take.
	skipVerify := false
	if q.Has("skip_verify") && u.Scheme == "rediss" {
		switch v := q.Get("skip_verify"); v {
		case "true", "1":
			skipVerify = true
		case "false", "0", "":
		default:
			return nil, fmt.Errorf("redis url (cluster): skip_verify=%q, want true or false", v)
		}
		q.Del("skip_verify")
	}
	c := *u
	c.Path, c.RawPath, c.RawQuery = "", "", q.Encode()
	o, err := redis.ParseClusterURL(c.String())
	if err != nil {
		return nil, redisError("cluster", err)
	}
	if skipVerify {
		o.TLSConfig.InsecureSkipVerify = true
	}
	o.ContextTimeoutEnabled = true
	return &ClientOptions{Cluster: o}, nil
}

func parseFailover(u *url.URL) (*ClientOptions, error) {
	o, err := redis.ParseFailoverURL(u.String())
	if err != nil {
		return nil, redisError("sentinel", err)
	}
	// redis.NewFailoverClient panics on the first two; the third sends writes to a replica.
	for _, p := range []struct {
		name string
		set  bool
	}{{"route_by_latency", o.RouteByLatency}, {"route_randomly", o.RouteRandomly}, {"replica_only", o.ReplicaOnly}} {
		if p.set {
			return nil, fmt.Errorf("redis url (sentinel): %s: not supported, symcache reads and writes the master", p.name)
		}
	}
	// The URL's credentials are the data nodes', as in the other forms.
	o.Username, o.Password = o.SentinelUsername, o.SentinelPassword
	o.SentinelUsername, o.SentinelPassword = "", ""
	o.ContextTimeoutEnabled = true
	return &ClientOptions{Failover: o}, nil
}

// NewClient returns a new client of the Redis deployment rawURL names, in one of
// the forms of [ParseURL]: a *redis.Client for a single server, a
// *redis.ClusterClient for a cluster, and a failover *redis.Client for
// Sentinel. It does not connect: the first command does. The caller closes it.
// No error holds the URL's password.
func NewClient(rawURL string) (redis.UniversalClient, error) {
	o, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return o.NewClient()
}

// NewClient builds a new client of o, as the package's NewClient does. go-redis
// panics on some options it cannot use (a pool_size beyond int32, say); from a
// URL, that is a bad setting, returned as an error.
func (o *ClientOptions) NewClient() (c redis.UniversalClient, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("redis url (%s): %v", o.form(), r)
		}
	}()
	switch {
	case o.Cluster != nil:
		return redis.NewClusterClient(o.Cluster), nil
	case o.Failover != nil:
		return redis.NewFailoverClient(o.Failover), nil
	case o.Single != nil:
		return redis.NewClient(o.Single), nil
	}
	return nil, errors.New("redis url: no options")
}

// SetSentinelAuth sets the credentials o's client gives the sentinels
// (Failover.SentinelUsername and Failover.SentinelPassword), which a URL does
// not carry: its user info is the master's and the replicas'. A password
// alone is the sentinels' requirepass; a username and password are an ACL
// user of theirs. It returns an error, and changes nothing, when o is not the
// Sentinel form (a URL without master_name=), where there are no sentinels to
// ask. No error holds the password.
func (o *ClientOptions) SetSentinelAuth(username, password string) error {
	switch {
	case o == nil:
		return errors.New("redis url: sentinel credentials given, but no Redis URL")
	case o.Cluster != nil:
		return errors.New("redis url: sentinel credentials given, but the URL names a Redis Cluster, not Sentinel (master_name=NAME), and a cluster has no sentinels")
	case o.Failover == nil:
		return errors.New("redis url: sentinel credentials given, but the URL names a single server, not Sentinel (add master_name=NAME)")
	}
	o.Failover.SentinelUsername, o.Failover.SentinelPassword = username, password
	return nil
}

// form names o's deployment form.
func (o *ClientOptions) form() string {
	switch {
	case o.Cluster != nil:
		return "cluster"
	case o.Failover != nil:
		return "sentinel"
	}
	return "single server"
}

// String describes o for logs, without the passwords: the form, the
// addresses, the database, TLS, the user and, for Sentinel, the sentinels'
// user (see [ClientOptions.SetSentinelAuth]), e.g.
// `sentinel master "symcache" via 10.0.0.1:26379,10.0.0.2:26379, db 0, TLS, user "app", password set, sentinel password set`.
func (o *ClientOptions) String() string {
	var b strings.Builder
	var user, password, sentinelUser, sentinelPassword string
	tls := false
	switch {
	case o.Cluster != nil:
		fmt.Fprintf(&b, "cluster via %s", strings.Join(o.Cluster.Addrs, ","))
		user, password, tls = o.Cluster.Username, o.Cluster.Password, o.Cluster.TLSConfig != nil
	case o.Failover != nil:
		fmt.Fprintf(&b, "sentinel master %q via %s, db %d", o.Failover.MasterName, strings.Join(o.Failover.SentinelAddrs, ","), o.Failover.DB)
		user, password, tls = o.Failover.Username, o.Failover.Password, o.Failover.TLSConfig != nil
		sentinelUser, sentinelPassword = o.Failover.SentinelUsername, o.Failover.SentinelPassword
	case o.Single != nil:
		fmt.Fprintf(&b, "single server %s, db %d", o.Single.Addr, o.Single.DB)
		user, password, tls = o.Single.Username, o.Single.Password, o.Single.TLSConfig != nil
	default:
		return "no Redis"
	}
	if tls {
		b.WriteString(", TLS")
	}
	if user != "" {
		fmt.Fprintf(&b, ", user %q", user)
	}
	if password != "" {
		b.WriteString(", password set")
	}
	if sentinelUser != "" {
		fmt.Fprintf(&b, ", sentinel user %q", sentinelUser)
	}
	if sentinelPassword != "" {
		b.WriteString(", sentinel password set")
	}
	return b.String()
}

// redisError is go-redis' parse error err, in form.
func redisError(form string, err error) error {
	return fmt.Errorf("redis url (%s): %s", form, strings.TrimPrefix(err.Error(), "redis: "))
}

// redact removes the password of rawURL from msg: as url.Parse reads it,
// escaped both ways, and as written in rawURL (between the first ":" and the
// last "@" of the part between "//" and the path), which also covers a URL
// that does not parse. An escape error, which quotes three bytes of the URL,
// perhaps of the password, loses its quote.
func redact(msg, rawURL string) string {
	var pws []string
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			pws = append(pws, pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
	}
	if _, rest, ok := strings.Cut(rawURL, "//"); ok {
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			rest = rest[:i]
		}
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			if _, pw, ok := strings.Cut(rest[:i], ":"); ok {
				pws = append(pws, pw) // as written in rawURL
			}
			if strings.Contains(msg, "invalid URL escape") {
				msg = "redis url: not a URL: invalid URL escape (a % not followed by two hex digits; write a % in a password as %25)"
			}
		}
	}
	for _, pw := range pws {
		if pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}
