// kinelike is a database client that behaves like Kine (k3s-io/kine, vCluster's backing
// store) as far as a database, or a proxy in front of one, can tell: the same drivers
// (pgx v4 for PostgreSQL, go-sql-driver/mysql for MySQL/MariaDB), the same start-up
// (make sure the database exists, then the `kine` table), and a database/sql pool whose
// connections expire quickly, so new connections are opened all the time.
//
// It reads its data source once, at start, from a file (never from argv, where other
// users of the machine could read it), runs -workers goroutines for -duration, each
// inserting a row and reading it back, and prints one JSON line. Exit status: 0 when
// nothing failed, 1 when something did, 2 on bad usage.
//
// Built offline in GOPATH mode from Debian's packages (see test/clients/CMakeLists.txt).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v4/stdlib"
)

const maxDSNFileSize = 64 << 10

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// result is the one JSON line printed at the end.
type result struct {
	Driver             string `json:"driver"`
	Mode               string `json:"mode"`
	DurationMs         int64  `json:"duration_ms"`
	Workers            int    `json:"workers"`
	Queries            int64  `json:"queries"`
	Failures           int64  `json:"failures"`
	FirstError         string `json:"first_error"`
	LastFailureMs      int64  `json:"last_failure_ms"`      // since start; -1 when nothing failed
	LastFailureUnixMs  int64  `json:"last_failure_unix_ms"` // wall clock (Unix ms) of the last failure; -1 when nothing failed
	CommittedRows      int64  `json:"committed_rows"`
	ConnectionsOpened  int64  `json:"connections_opened"`
	ConnectFailures    int64  `json:"connect_failures"`
	MaxIdleTimeClosed  int64  `json:"max_idle_time_closed"`
	MaxLifetimeClosed  int64  `json:"max_lifetime_closed"`
	NamePrefix         string `json:"name_prefix"`
	SetupWarnings      int    `json:"setup_warnings"`
	VerifiedRows       int64  `json:"verified_rows"`
	VerifyExpectedRows int64  `json:"verify_expected_rows"`
}

// tally is what the workers count, shared between them.
type tally struct {
	start         time.Time
	queries       int64
	failures      int64
	committed     int64
	lastFailureNs int64
	mu            sync.Mutex
	firstError    string
	secrets       []string
}

func (t *tally) query() { atomic.AddInt64(&t.queries, 1) }

func (t *tally) fail(err error) {
	atomic.AddInt64(&t.failures, 1)
	atomic.StoreInt64(&t.lastFailureNs, int64(time.Since(t.start)))
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.firstError == "" {
		t.firstError = redact(err.Error(), t.secrets)
	}
}

// countingConnector counts the connections the pool really opens (every successful
// Connect of the driver), which is what a proxy in front of the server sees.
type countingConnector struct {
	inner    driver.Connector
	opened   int64
	failures int64
}

func (c *countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		atomic.AddInt64(&c.failures, 1)
		return nil, err
	}
	atomic.AddInt64(&c.opened, 1)
	return conn, nil
}

func (c *countingConnector) Driver() driver.Driver { return c.inner.Driver() }

// userinfoPassword matches the password of scheme://user:password@ and of go-sql-driver's
// user:password@tcp( (which runs to the last '@' before the address).
var (
	urlPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)[^\s@]*@`)
	goPassword  = regexp.MustCompile(`(^|[\s"'=(])([^:/@\s"'=(]*:)(?:[^\s]*)(@(?:tcp|unix)\()`)
)

// redact removes anything after a ':' in the userinfo of a data source, and any of the
// known secrets, from a message.
func redact(msg string, secrets []string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	msg = urlPassword.ReplaceAllString(msg, "${1}***@")
	return goPassword.ReplaceAllString(msg, "${1}${2}***${3}")
}

// engine is what differs between the two drivers.
type engine struct {
	name      string
	connector func() (driver.Connector, error) // the data source's database
	dbName    string
	// ensureDatabase does what Kine does at start before it opens its pool.
	ensureDatabase func(t *tally) (warnings int, err error)
	schema         []string
	insert         func(ctx context.Context, db *sql.DB, name string, value []byte) (int64, error)
	readBack       string
	countRows      string
	secrets        []string
}

func readDSNFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", usageError{fmt.Sprintf("-dsn-file: %v", err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDSNFileSize+1))
	if err != nil {
		return "", usageError{fmt.Sprintf("-dsn-file: %v", err)}
	}
	if len(data) > maxDSNFileSize {
		return "", usageError{"-dsn-file: larger than 64 KiB"}
	}
	dsn := strings.TrimSpace(string(data))
	if dsn == "" {
		return "", usageError{"-dsn-file: empty"}
	}
	return dsn, nil
}

func quotePG(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }

func quoteMySQL(ident string) string { return "`" + strings.ReplaceAll(ident, "`", "``") + "`" }

func warn(t *tally, format string, args ...interface{}) {
	fmt.Fprintln(os.Stderr, "kinelike: warning: "+redact(fmt.Sprintf(format, args...), t.secrets))
}

func pgxEngine(dsn, caFile string) (*engine, error) {
	// Kine takes the endpoint without its scheme and puts postgres:// back.
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		dsn = "postgres://" + dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		// url's errors quote the whole input; say only what is wrong.
		return nil, usageError{"data source: not a postgres:// URL"}
	}
	e := &engine{name: "pgx"}
	if p, ok := u.User.Password(); ok {
		e.secrets = append(e.secrets, p, url.QueryEscape(p), url.PathEscape(p))
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/kubernetes"
	}
	e.dbName = strings.TrimPrefix(u.Path, "/")
	if caFile != "" {
		// As Kine's --ca-file: sslrootcert (and verify-full) unless the DSN says otherwise.
		q := u.Query()
		if q.Get("sslrootcert") == "" {
			q.Set("sslrootcert", caFile)
			if q.Get("sslmode") == "" {
				q.Set("sslmode", "verify-full")
			}
		}
		u.RawQuery = q.Encode()
	}
	drv := stdlib.GetDefaultDriver().(*stdlib.Driver)
	mainDSN := u.String()
	e.connector = func() (driver.Connector, error) { return drv.OpenConnector(mainDSN) }
	admin := *u
	admin.Path = "/postgres"
	adminDSN := admin.String()
	e.ensureDatabase = func(t *tally) (int, error) {
		// Kine: connect to `postgres` with the same DSN, look the database up in
		// pg_database, try CREATE DATABASE when it is missing; every failure only warns.
		c, err := drv.OpenConnector(adminDSN)
		if err != nil {
			warn(t, "database %s: cannot use database postgres: %v", e.dbName, err)
			return 1, nil
		}
		db := sql.OpenDB(c)
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var one int
		t.query()
		err = db.QueryRowContext(ctx, "SELECT 1 FROM pg_database WHERE datname = $1", e.dbName).Scan(&one)
		if err == nil {
			return 0, nil
		}
		warnings := 0
		if !errors.Is(err, sql.ErrNoRows) {
			warn(t, "database %s: cannot look it up, trying to create it: %v", e.dbName, err)
			warnings++
		}
		t.query()
		if _, err := db.ExecContext(ctx, "CREATE DATABASE "+quotePG(e.dbName)); err != nil {
			warn(t, "database %s: cannot create it: %v", e.dbName, err)
			warnings++
		}
		return warnings, nil
	}
	e.schema = []string{
		`CREATE TABLE IF NOT EXISTS kine (
			id SERIAL PRIMARY KEY,
			name VARCHAR(630),
			created INTEGER,
			deleted INTEGER,
			create_revision INTEGER,
			prev_revision INTEGER,
			lease INTEGER,
			value bytea,
			old_value bytea)`,
		`CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)`,
		`CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision)`,
	}
	e.insert = func(ctx context.Context, db *sql.DB, name string, value []byte) (int64, error) {
		var id int64
		err := db.QueryRowContext(ctx,
			`INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, old_value)
			 VALUES ($1, 1, 0, 0, 0, 0, $2, $3) RETURNING id`, name, value, []byte{}).Scan(&id)
		return id, err
	}
	e.readBack = `SELECT value FROM kine WHERE id = $1`
	e.countRows = `SELECT COUNT(*) FROM kine WHERE LEFT(name, $1) = $2`
	return e, nil
}

func mysqlEngine(dsn, caFile string) (*engine, error) {
	// Kine strips the scheme and hands the rest to go-sql-driver.
	dsn = strings.TrimPrefix(dsn, "mysql://")
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, usageError{"data source: not a go-sql-driver/mysql DSN: " + redact(err.Error(), nil)}
	}
	e := &engine{name: "mysql", secrets: []string{cfg.Passwd}}
	if cfg.DBName == "" {
		cfg.DBName = "kubernetes"
	}
	e.dbName = cfg.DBName
	if caFile != "" {
		// As Kine's --ca-file: a registered TLS configuration that verifies the server
		// against this CA (go-sql-driver's tls=true verifies against the system's roots
		// only, and a DSN cannot name a CA file).
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, usageError{fmt.Sprintf("-ca-file: %v", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageError{"-ca-file: no PEM certificate in " + caFile}
		}
		if err := mysql.RegisterTLSConfig("kinelike", &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}); err != nil {
			return nil, err
		}
		cfg.TLSConfig = "kinelike"
	}
	e.connector = func() (driver.Connector, error) { return mysql.NewConnector(cfg) }
	e.ensureDatabase = func(t *tally) (int, error) {
		// Kine: with the DSN as given, look the name up in information_schema.SCHEMATA and
		// run CREATE DATABASE IF NOT EXISTS when it is not seen; that failing stops Kine.
		c, err := mysql.NewConnector(cfg)
		if err != nil {
			return 0, err
		}
		db := sql.OpenDB(c)
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var one int
		t.query()
		err = db.QueryRowContext(ctx, "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", e.dbName).Scan(&one)
		if err == nil {
			return 0, nil
		}
		warnings := 0
		if !errors.Is(err, sql.ErrNoRows) {
			warn(t, "database %s: cannot look it up, trying to create it: %v", e.dbName, err)
			warnings++
		}
		t.query()
		if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteMySQL(e.dbName)); err != nil {
			return warnings, fmt.Errorf("database %s: CREATE DATABASE IF NOT EXISTS: %w", e.dbName, err)
		}
		return warnings, nil
	}
	e.schema = []string{
		`CREATE TABLE IF NOT EXISTS kine (
			id INTEGER AUTO_INCREMENT,
			name VARCHAR(630) CHARACTER SET ascii,
			created INTEGER,
			deleted INTEGER,
			create_revision INTEGER,
			prev_revision INTEGER,
			lease INTEGER,
			value MEDIUMBLOB,
			old_value MEDIUMBLOB,
			PRIMARY KEY (id))`,
		`CREATE INDEX kine_name_index ON kine (name)`,
		`CREATE UNIQUE INDEX kine_name_prev_revision_uindex ON kine (name, prev_revision)`,
	}
	e.insert = func(ctx context.Context, db *sql.DB, name string, value []byte) (int64, error) {
		res, err := db.ExecContext(ctx,
			`INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, value, old_value)
			 VALUES (?, 1, 0, 0, 0, 0, ?, ?)`, name, value, []byte{})
		if err != nil {
			return 0, err
		}
		return res.LastInsertId()
	}
	e.readBack = `SELECT value FROM kine WHERE id = ?`
	e.countRows = `SELECT COUNT(*) FROM kine WHERE LEFT(name, ?) = ?`
	return e, nil
}

// isDuplicateIndex: MySQL has no CREATE INDEX IF NOT EXISTS; Kine ignores error 1061.
func isDuplicateIndex(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1061
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func worker(ctx context.Context, e *engine, db *sql.DB, t *tally, prefix string, id int, wg *sync.WaitGroup) {
	defer wg.Done()
	value := make([]byte, 64)
	for seq := 0; ctx.Err() == nil; seq++ {
		if _, err := rand.Read(value); err != nil {
			panic(err)
		}
		name := fmt.Sprintf("%s/w%d/%d", prefix, id, seq)
		opCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.query()
		rowID, err := e.insert(opCtx, db, name, value)
		if err != nil {
			cancel()
			t.fail(fmt.Errorf("insert: %w", err))
			// A client's retry pause, not a test's wait: do not spin on a dead server.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		atomic.AddInt64(&t.committed, 1)
		var got []byte
		t.query()
		err = db.QueryRowContext(opCtx, e.readBack, rowID).Scan(&got)
		cancel()
		if err != nil {
			t.fail(fmt.Errorf("read back: %w", err))
			continue
		}
		if !bytes.Equal(got, value) {
			t.fail(fmt.Errorf("read back: row %d holds other bytes than were inserted", rowID))
		}
	}
}

func setup(e *engine, db *sql.DB, t *tally) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, stmt := range e.schema {
		t.query()
		if _, err := db.ExecContext(ctx, stmt); err != nil && !isDuplicateIndex(err) {
			return fmt.Errorf("creating the kine table: %w", err)
		}
	}
	return nil
}

func run() (res result, err error) {
	var (
		driverName  = flag.String("driver", "", "pgx (PostgreSQL) or mysql (MySQL/MariaDB)")
		dsnFile     = flag.String("dsn-file", "", "file holding the data source, in Kine's format (read once)")
		caFile      = flag.String("ca-file", "", "CA bundle to verify the server with, as Kine's --ca-file")
		duration    = flag.Duration("duration", 2*time.Second, "how long the workers run")
		workers     = flag.Int("workers", 4, "concurrent workers, each inserting and reading back rows")
		maxOpen     = flag.Int("max-open", 0, "pool's open connection limit (0: -workers)")
		maxIdle     = flag.Int("max-idle", 2, "pool's idle connection limit (Kine's default is 2)")
		maxIdleTime = flag.Duration("max-idle-time", 200*time.Millisecond, "idle connections are closed after this long")
		maxLifetime = flag.Duration("max-lifetime", 200*time.Millisecond, "connections are closed after this long")
		namePrefix  = flag.String("name-prefix", "", "prefix of the rows' names (default: /kinelike/<random>)")
		verifyRows  = flag.Int64("verify-rows", -1, "only count the rows named -name-prefix* (all rows without it) and require at least this many")
	)
	flag.CommandLine.SetOutput(os.Stderr)
	flag.Parse()
	res = result{Driver: *driverName, Workers: *workers, LastFailureMs: -1, LastFailureUnixMs: -1, VerifyExpectedRows: *verifyRows}
	if flag.NArg() != 0 {
		return res, usageError{"unexpected argument (the data source goes in -dsn-file)"}
	}
	if *dsnFile == "" {
		return res, usageError{"-dsn-file is required"}
	}
	if *workers < 1 || *workers > 1000 {
		return res, usageError{"-workers: 1 to 1000"}
	}
	if *duration <= 0 {
		return res, usageError{"-duration must be positive"}
	}
	dsn, err := readDSNFile(*dsnFile)
	if err != nil {
		return res, err
	}
	var e *engine
	switch *driverName {
	case "pgx":
		e, err = pgxEngine(dsn, *caFile)
	case "mysql":
		e, err = mysqlEngine(dsn, *caFile)
	default:
		return res, usageError{"-driver: pgx or mysql"}
	}
	if err != nil {
		return res, err
	}
	t := &tally{start: time.Now(), secrets: e.secrets}
	defer func() {
		res.DurationMs = time.Since(t.start).Milliseconds()
		res.Queries = atomic.LoadInt64(&t.queries)
		res.Failures = atomic.LoadInt64(&t.failures)
		res.CommittedRows = atomic.LoadInt64(&t.committed)
		res.FirstError = t.firstError
		if res.Failures > 0 {
			last := time.Duration(atomic.LoadInt64(&t.lastFailureNs))
			res.LastFailureMs = last.Milliseconds()
			res.LastFailureUnixMs = t.start.Add(last).UnixMilli()
		}
	}()

	inner, err := e.connector()
	if err != nil {
		t.fail(err)
		return res, nil
	}
	counter := &countingConnector{inner: inner}
	db := sql.OpenDB(counter)
	defer db.Close()
	defer func() {
		st := db.Stats()
		res.ConnectionsOpened = atomic.LoadInt64(&counter.opened)
		res.ConnectFailures = atomic.LoadInt64(&counter.failures)
		res.MaxIdleTimeClosed = st.MaxIdleTimeClosed
		res.MaxLifetimeClosed = st.MaxLifetimeClosed
	}()

	if *verifyRows >= 0 {
		res.Mode = "verify"
		res.NamePrefix = *namePrefix
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		t.query()
		if err := db.QueryRowContext(ctx, e.countRows, len(*namePrefix), *namePrefix).Scan(&res.VerifiedRows); err != nil {
			t.fail(fmt.Errorf("counting rows: %w", err))
			return res, nil
		}
		if res.VerifiedRows < *verifyRows {
			t.fail(fmt.Errorf("%d rows named %q*, expected at least %d", res.VerifiedRows, *namePrefix, *verifyRows))
		}
		return res, nil
	}

	res.Mode = "run"
	res.NamePrefix = *namePrefix
	if res.NamePrefix == "" {
		res.NamePrefix = "/kinelike/" + randomHex(8)
	}
	warnings, err := e.ensureDatabase(t)
	res.SetupWarnings = warnings
	if err != nil {
		t.fail(err)
		return res, nil
	}
	if err := setup(e, db, t); err != nil {
		t.fail(err)
		return res, nil
	}

	open := *maxOpen
	if open <= 0 {
		open = *workers
	}
	db.SetMaxOpenConns(open)
	db.SetMaxIdleConns(*maxIdle)
	db.SetConnMaxIdleTime(*maxIdleTime)
	db.SetConnMaxLifetime(*maxLifetime)

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < *workers; i++ {
		wg.Add(1)
		go worker(ctx, e, db, t, res.NamePrefix, i, &wg)
	}
	wg.Wait()
	return res, nil
}

func main() {
	res, err := run()
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(os.Stderr, "kinelike: "+ue.msg)
		os.Exit(2)
	}
	if err != nil {
		res.Failures++
		if res.FirstError == "" {
			res.FirstError = redact(err.Error(), nil)
		}
	}
	line, jerr := json.Marshal(res)
	if jerr != nil {
		fmt.Fprintln(os.Stderr, "kinelike: "+jerr.Error())
		os.Exit(1)
	}
	fmt.Println(string(line))
	if res.Failures > 0 {
		os.Exit(1)
	}
}
