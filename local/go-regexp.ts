/**
 * Go's `regexp`, the engine the SSM Agent validates Command document parameters with.
 *
 * The agent compiles each parameter's allowedPattern with `regexp.Compile` and tests the value
 * with `(*Regexp).MatchString` (an unanchored search: the pattern's own `^`/`$` anchor it), every
 * time it parses a document, before any step runs (aws/amazon-ssm-agent,
 * agent/framework/docparser/paramvalidator/allowedregexparamvalidator/allowedregexparamvalidator.go).
 * Go's RE2 syntax differs from JavaScript's and Java's: no backreferences or lookaround, and a
 * repeat count above 1000 does not compile. So the twin and the tests ask Go itself: a tiny
 * program, written and built with the Go toolchain (Debian's golang-go, installed by
 * scripts/setup.sh) once per process into a private temporary directory that is removed when the
 * process exits (by a detached shell that waits for it). Nothing is cached between processes.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Reads lines "<base64 pattern> <base64 value>" and answers one line each: "E <base64 error>" when
 * regexp.Compile refuses the pattern, else "1" or "0" for MatchString. Both calls are the agent's.
 */
const GO_SOURCE = `package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"regexp"
	"strings"
)

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	compiled := map[string]*regexp.Regexp{}
	failed := map[string]string{}
	for in.Scan() {
		line := in.Text()
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, " ", 2)
		p, err1 := base64.StdEncoding.DecodeString(parts[0])
		v, err2 := base64.StdEncoding.DecodeString(parts[1])
		if err1 != nil || err2 != nil {
			fmt.Fprintln(os.Stderr, "bad input line")
			os.Exit(2)
		}
		pattern := string(p)
		if msg, ok := failed[pattern]; ok {
			fmt.Fprintln(out, "E", base64.StdEncoding.EncodeToString([]byte(msg)))
			continue
		}
		re, ok := compiled[pattern]
		if !ok {
			var err error
			re, err = regexp.Compile(pattern)
			if err != nil {
				failed[pattern] = err.Error()
				fmt.Fprintln(out, "E", base64.StdEncoding.EncodeToString([]byte(err.Error())))
				continue
			}
			compiled[pattern] = re
		}
		if re.MatchString(string(v)) {
			fmt.Fprintln(out, "1")
		} else {
			fmt.Fprintln(out, "0")
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
`;

/** Go's answer for one (pattern, value): the compile error, or whether MatchString accepts. */
export interface GoVerdict {
  readonly compileError?: string;
  readonly match: boolean;
}

/** Thrown when the Go toolchain is missing or the checker cannot run. */
export class GoRegexpUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GoRegexpUnavailable';
  }
}

let built: string | undefined;

/** Builds the checker once per process; later calls reuse it. */
export function goRegexpBinary(): string {
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), 'go-regexp-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  // Under jest the test file's `process` is a copy whose 'exit' never fires, and a killed process
  // runs no handler at all: a detached shell removes the directory once this process is gone.
  spawn('sh', ['-c', 'while kill -0 "$1" 2>/dev/null; do sleep 2; done; rm -rf -- "$2"', 'go-regexp-reaper', String(process.pid), dir], {
    detached: true,
    stdio: 'ignore',
  }).unref();
  writeFileSync(join(dir, 'main.go'), GO_SOURCE);
  const bin = join(dir, 'regexp-check');
  try {
    execFileSync('go', ['build', '-o', bin, 'main.go'], {
      cwd: dir,
      stdio: 'pipe',
      timeout: 180_000,
      // No module, no network: the program imports the standard library only.
      env: { ...process.env, GO111MODULE: 'off', GOFLAGS: '', GOPROXY: 'off' },
    });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new GoRegexpUnavailable(`could not build the Go regexp checker (is golang-go installed? scripts/setup.sh): ${e.stderr?.toString() || e.message}`);
  }
  built = bin;
  return bin;
}

function encode(pairs: ReadonlyArray<readonly [string, string]>): string {
  return pairs.map(([p, v]) => `${Buffer.from(p, 'utf8').toString('base64')} ${Buffer.from(v, 'utf8').toString('base64')}`).join('\n') + '\n';
}

function decode(out: string, count: number): GoVerdict[] {
  const lines = out.split('\n').filter((l) => l.length > 0);
  if (lines.length !== count) throw new GoRegexpUnavailable(`the Go regexp checker answered ${lines.length} of ${count}`);
  return lines.map((l) =>
    l.startsWith('E ') ? { compileError: Buffer.from(l.slice(2), 'base64').toString('utf8'), match: false } : { match: l === '1' },
  );
}

/** Go's verdicts for many (pattern, value) pairs in one run. */
export function goRegexpVerdicts(pairs: ReadonlyArray<readonly [string, string]>): GoVerdict[] {
  if (pairs.length === 0) return [];
  const out = execFileSync(goRegexpBinary(), [], { input: encode(pairs), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 60_000 });
  return decode(out, pairs.length);
}

/** The same, without blocking the event loop (the twin's agent serves HTTP meanwhile). */
export function goRegexpVerdictsAsync(pairs: ReadonlyArray<readonly [string, string]>): Promise<GoVerdict[]> {
  if (pairs.length === 0) return Promise.resolve([]);
  const bin = goRegexpBinary();
  return new Promise((resolve, reject) => {
    const child = execFile(bin, [], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 60_000 }, (err, stdout) => {
      if (err) return reject(new GoRegexpUnavailable(`the Go regexp checker failed: ${err.message}`));
      try {
        resolve(decode(stdout, pairs.length));
      } catch (e) {
        reject(e);
      }
    });
    child.stdin?.end(encode(pairs));
  });
}
