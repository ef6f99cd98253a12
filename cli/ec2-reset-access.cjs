#!/usr/bin/env node
'use strict';
// The package's bin: the CLI built from cli/main.ts by `npm run build:cli` (run by `prepare` on
// npm ci / npm install, and by pretest / prestart).
const path = require('path');
const fs = require('fs');
const built = path.join(__dirname, 'dist', 'main.cjs');
if (!fs.existsSync(built)) {
  process.stderr.write('ec2-reset-access: the CLI is not built; run `npm run build:cli` in ' + path.dirname(__dirname) + '\n');
  process.exit(1);
}
require(built).main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
