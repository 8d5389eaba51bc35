#!/usr/bin/env node
// Validates an AsyncAPI document with the official parser (@asyncapi/parser, pinned in
// package.json) and prints its diagnostics as one JSON object:
//
//   node tools/asyncapi/validate.js [schemas/asyncapi.json]
//
//   {"document": "...", "parsed": true, "asyncapi": "3.0.0",
//    "errors": [...], "warnings": [...], "infos": [...], "hints": [...]}
//
// Each diagnostic: {"code", "message", "path" (JSON pointer into the document), "range"}.
// Relative $refs (the per-event JSON Schemas in schemas/events/) are resolved from the
// document's own directory. Exit status: 0 without errors, 1 with errors, 2 on a usage or I/O
// failure.
'use strict';

const path = require('path');
const { Parser, fromFile, DiagnosticSeverity } = require('@asyncapi/parser');

const SEVERITY = {
  [DiagnosticSeverity.Error]: 'errors',
  [DiagnosticSeverity.Warning]: 'warnings',
  [DiagnosticSeverity.Information]: 'infos',
  [DiagnosticSeverity.Hint]: 'hints',
};

async function main() {
  const file = path.resolve(process.argv[2] || path.join(__dirname, '..', '..', 'schemas', 'asyncapi.json'));
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, file).parse();
  const out = { document: file, parsed: Boolean(document), errors: [], warnings: [], infos: [], hints: [] };
  if (document) {
    out.asyncapi = document.version();
  }
  for (const d of diagnostics) {
    out[SEVERITY[d.severity] || 'errors'].push({
      code: d.code,
      message: d.message,
      path: '/' + (d.path || []).map((p) => String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('/'),
      range: d.range,
    });
  }
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  return out.errors.length || !out.parsed ? 1 : 0;
}

main().then((code) => process.exit(code), (err) => {
  process.stdout.write(JSON.stringify({ parsed: false, errors: [{ code: 'exception', message: String(err && err.stack || err) }] }) + '\n');
  process.exit(2);
});
