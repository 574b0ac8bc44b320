// `encsec audit verify --db DB`: walks the server's hash-chained audit log
// and fails (exit 1, naming the first broken row) when a row was removed or
// edited; on success prints the row count and the head hash (anchor it elsewhere).
import type { Command } from './command';
// The server's modules (fastify, SQLite) load only when this command runs:
// `encsec` itself and the library stay light.
const loadServer = () => import('../server');

export const auditCommand: Command = {
  summary: "check the server's audit log: audit verify --db DB",
  options: {
    db: { kind: 'string', help: 'the server database' },
  },
  async run(args) {
    const { openServerDb, verifyAuditChain } = await loadServer();
    const [action, ...extra] = args.positional;
    if (action !== 'verify') throw new Error(`audit needs an action: verify, got ${JSON.stringify(action ?? '')}`);
    if (extra.length > 0) throw new Error(`unexpected argument ${JSON.stringify(extra[0])}`);
    const dbFile = args.string('db');
    if (!dbFile) throw new Error('--db FILE is required');
    const db = openServerDb(dbFile);
    try {
      const v = verifyAuditChain(db);
      if (!v.ok) throw new Error(`audit chain of ${dbFile} is broken at row ${v.problem!.seq}: ${v.problem!.reason} (${v.rows} rows verified before it)`);
      return { action, db: dbFile, ok: true, rows: v.rows, head: v.head };
    } finally {
      db.close();
    }
  },
};
