#!/usr/bin/env node
// A second opinion on tenantdb's proxy (issue 10): Node's own drivers, `pg` for PostgreSQL
// and `mysql2` for MySQL/MariaDB (exact versions in package.json, installed by
// tools/install-deps.sh). Like an application that reads DATABASE_URL once, it reads its
// data source ONCE at start (from a file, so nothing lands on argv), then runs workers that
// insert a row and read that committed row back by id, in a loop, for --duration or until
// --stop-file exists. The pools are set up to open new connections often (short idle
// timeouts; pg also retires every connection after a second), so logins keep happening
// while the sidecar rotates underneath. At the end it prints ONE JSON line:
//   {"driver","mode","duration_ms","workers","queries","failures","first_error",
//    "committed_rows","connections_opened","idle_errors","name_prefix","verified_rows"}
// Verify mode (--verify-rows N --name-prefix P): counts the rows named P* and fails
// unless there are at least N; nothing else.
// Exit: 0 no failures, 1 failures (or verify found too few rows), 2 bad usage.
'use strict';

const fs = require('fs');
const crypto = require('crypto');

function usage(msg) {
  process.stderr.write(`node-client: ${msg} (usage: client.js --driver pg|mysql2 --dsn-file FILE [--duration MS] ` +
                       `[--workers N] [--idle-ms MS] [--stop-file FILE] [--name-prefix P] [--verify-rows N])\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = {driver: '', dsnFile: '', duration: 2000, workers: 4, idleMs: 100, stopFile: '', namePrefix: '',
             verifyRows: null};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) usage(`${flag} needs a value`);
    i++;
    const int = () => {
      if (!/^[0-9]+$/.test(value)) usage(`${flag} must be a non-negative integer, not '${value}'`);
      return Number(value);
    };
    switch (flag) {
      case '--driver': o.driver = value; break;
      case '--dsn-file': o.dsnFile = value; break;
      case '--duration': o.duration = int(); break;
      case '--workers': o.workers = int(); break;
      case '--idle-ms': o.idleMs = int(); break;
      case '--stop-file': o.stopFile = value; break;
      case '--name-prefix': o.namePrefix = value; break;
      case '--verify-rows': o.verifyRows = int(); break;
      default: usage(`unknown flag '${flag}'`);
    }
  }
  if (o.driver !== 'pg' && o.driver !== 'mysql2') usage(`--driver must be pg or mysql2, not '${o.driver}'`);
  if (!o.dsnFile) usage('--dsn-file is required');
  if (o.workers < 1) usage('--workers must be at least 1');
  return o;
}

// A driver's error, on one line; the data source never goes into it (it has no password
// anyway: the proxy's loopback front door needs none).
function describe(err) {
  const code = err && err.code ? `${err.code}: ` : '';
  return (code + String(err && err.message ? err.message : err)).replace(/\s+/g, ' ').slice(0, 500);
}

function makePg(dsn, o, counters) {
  const {Pool} = require('pg');
  const pool = new Pool({
    connectionString: dsn,
    max: o.workers,
    idleTimeoutMillis: Math.max(o.idleMs, 1),  // an idle connection closes after this ...
    maxLifetimeSeconds: 1,                     // ... and every connection after a second
    connectionTimeoutMillis: 15000,
  });
  pool.on('connect', () => counters.connectionsOpened++);
  pool.on('error', (err) => {  // an idle connection died: no query failed, but count it
    counters.idleErrors++;
    if (!counters.firstIdleError) counters.firstIdleError = describe(err);
  });
  return {
    setup: async () => {
      await pool.query(`CREATE TABLE IF NOT EXISTS node_rows (
        id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, value TEXT NOT NULL)`);
    },
    insert: async (name, value) => {
      const r = await pool.query('INSERT INTO node_rows (name, value) VALUES ($1, $2) RETURNING id', [name, value]);
      return r.rows[0].id;
    },
    readBack: async (id) => {
      const r = await pool.query('SELECT value FROM node_rows WHERE id = $1', [id]);
      return r.rows.length === 1 ? r.rows[0].value : null;
    },
    count: async (prefix) => {
      const r = await pool.query('SELECT COUNT(*) AS n FROM node_rows WHERE LEFT(name, $1) = $2', [prefix.length, prefix]);
      return Number(r.rows[0].n);
    },
    end: () => pool.end(),
  };
}

function makeMysql2(dsn, o, counters) {
  const mysql = require('mysql2');
  const raw = mysql.createPool({
    uri: dsn,
    connectionLimit: o.workers,
    maxIdle: 0,                       // the pool's reaper closes every free connection ...
    idleTimeout: Math.max(o.idleMs, 1),  // ... and any idle for longer than this
    connectTimeout: 15000,
  });
  raw.on('connection', () => counters.connectionsOpened++);
  const pool = raw.promise();
  return {
    setup: async () => {
      await pool.query(`CREATE TABLE IF NOT EXISTS node_rows (
        id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(200) NOT NULL, value VARCHAR(200) NOT NULL)`);
    },
    insert: async (name, value) => {
      const [r] = await pool.execute('INSERT INTO node_rows (name, value) VALUES (?, ?)', [name, value]);
      return r.insertId;
    },
    readBack: async (id) => {
      const [rows] = await pool.execute('SELECT value FROM node_rows WHERE id = ?', [id]);
      return rows.length === 1 ? rows[0].value : null;
    },
    count: async (prefix) => {
      const [rows] = await pool.query('SELECT COUNT(*) AS n FROM node_rows WHERE LEFT(name, ?) = ?', [prefix.length, prefix]);
      return Number(rows[0].n);
    },
    end: () => pool.end(),
  };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  let dsn;
  try {
    dsn = fs.readFileSync(o.dsnFile, 'utf8').trim();  // read once, never again
  } catch (err) {
    usage(`cannot read --dsn-file ${o.dsnFile}: ${err.code || err.message}`);
  }
  if (!dsn) usage(`--dsn-file ${o.dsnFile} is empty`);

  const counters = {connectionsOpened: 0, idleErrors: 0, firstIdleError: ''};
  const db = o.driver === 'pg' ? makePg(dsn, o, counters) : makeMysql2(dsn, o, counters);
  const prefix = o.namePrefix || `node-${crypto.randomBytes(6).toString('hex')}-`;
  const started = Date.now();
  const summary = {
    driver: o.driver, mode: o.verifyRows === null ? 'run' : 'verify', duration_ms: 0, workers: o.workers,
    queries: 0, failures: 0, first_error: '', committed_rows: 0, connections_opened: 0, idle_errors: 0,
    first_idle_error: '', name_prefix: prefix, verified_rows: 0,
  };
  const fail = (what, err) => {
    summary.failures++;
    if (!summary.first_error) summary.first_error = `${what}: ${describe(err)}`;
  };

  if (o.verifyRows !== null) {
    try {
      summary.verified_rows = await db.count(prefix);
      summary.queries++;
      if (summary.verified_rows < o.verifyRows)
        fail('verify', `found ${summary.verified_rows} rows named ${prefix}*, expected at least ${o.verifyRows}`);
    } catch (err) {
      fail('verify', err);
    }
  } else {
    try {
      await db.setup();
      summary.queries++;
    } catch (err) {
      fail('setup', err);
    }
    const deadline = started + o.duration;
    const stop = () => Date.now() >= deadline || (o.stopFile && fs.existsSync(o.stopFile));
    const worker = async (w) => {
      for (let seq = 0; !summary.first_error.startsWith('setup') && !stop(); seq++) {
        const name = `${prefix}${w}-${seq}`;
        const value = crypto.randomBytes(8).toString('hex');
        let id;
        try {
          id = await db.insert(name, value);
          summary.queries++;
          summary.committed_rows++;
        } catch (err) {
          fail('insert', err);
          continue;
        }
        try {
          const got = await db.readBack(id);
          summary.queries++;
          if (got !== value) fail('read back', `row ${id} (${name}) reads ${JSON.stringify(got)}, committed ${value}`);
        } catch (err) {
          fail('read back', err);
        }
        // Now and then the worker idles past the pools' idle timeout, as an application
        // between requests does, so the pool closes connections and opens new ones.
        if (seq % 4 === 3) await new Promise((resolve) => setTimeout(resolve, 2 * o.idleMs));
      }
    };
    await Promise.all(Array.from({length: o.workers}, (_, w) => worker(w)));
  }
  summary.duration_ms = Date.now() - started;
  summary.connections_opened = counters.connectionsOpened;
  summary.idle_errors = counters.idleErrors;
  summary.first_idle_error = counters.firstIdleError;
  try {
    await db.end();
  } catch (err) {
    // closing the pool is not part of what is measured
  }
  process.stdout.write(JSON.stringify(summary) + '\n');
  process.exit(summary.failures === 0 ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(`node-client: ${describe(err)}\n`);
  process.exit(1);
});
