/**
 * keygenMs: median time of `generateKeyPair` per key type, and the proof that RSA 4096 never
 * runs on node-forge's pure-JS path. Three independent proofs, all recorded:
 * 1. runtime: a child process spies on Node's crypto and on node-forge's RSA generator and prime
 *    search before loading keys.ts, generates keys, and reports which generators ran;
 * 2. source: keys.ts calls `generateKeyPairSync('rsa', ...)` and never forge's generator;
 * 3. bundle (when the synthesized inject-key bundle is at hand): it calls generateKeyPairSync and
 *    does not contain forge's prime search (`generateProbablePrime`), so it cannot run it.
 */
import * as fs from 'fs';
import * as path from 'path';
import { runChild, TIMING_NICE, type QuietWait } from './exec';
import { median, round } from './stats';

export const PROJECT_ROOT = path.resolve(__dirname, '..');
export const TSX = path.join(PROJECT_ROOT, 'node_modules', '.bin', 'tsx');

export interface KeygenTypeResult {
  readonly medianMs: number;
  readonly runsMs: readonly number[];
  /** Median CPU time (user + system) of one generation: less sensitive to a busy machine. */
  readonly cpuMedianMs: number;
  /** Which generators the spies saw, e.g. `{"crypto.generateKeyPairSync:rsa:4096": 5}`. */
  readonly generatorCalls: Readonly<Record<string, number>>;
}

export interface RsaPathProof {
  /** True when all available proofs agree: native crypto, 4096 bits, no forge generator. */
  readonly native: boolean;
  readonly runtime: string;
  readonly source: string;
  readonly bundle: string;
}

export interface KeygenResult {
  readonly rsa: KeygenTypeResult;
  readonly ed25519: KeygenTypeResult;
  readonly rsaPath: RsaPathProof;
  /** The wait for a quiet machine before the runs (bench/run.ts). */
  readonly quietWait?: QuietWait;
}

interface ProbeOutput {
  [type: string]: { runsMs: number[]; cpuMs: number[]; calls: Record<string, number>; publicKeyType: string; fingerprintOk: boolean };
}

/** Proof 2: what keys.ts says in its source. Exported for the test. */
export function checkKeysSource(source: string): { ok: boolean; detail: string } {
  // Comments mention node-forge's generator by name; only code counts.
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const native = /generateKeyPairSync\(\s*['"]rsa['"]\s*,\s*\{[^}]*modulusLength:\s*4096/.test(code);
  const forge = /rsa\.generateKeyPair\s*\(|generateProbablePrime|usePureJavaScript\s*=\s*true/.test(code);
  if (native && !forge) {
    return { ok: true, detail: "keys.ts calls generateKeyPairSync('rsa', { modulusLength: 4096 }) and no node-forge generator" };
  }
  return { ok: false, detail: `keys.ts: native 4096 call ${native ? 'found' : 'NOT found'}, node-forge generator ${forge ? 'FOUND' : 'absent'}` };
}

/** Proof 3: what the bundled inject-key Lambda contains. Exported for the test. */
export function checkBundleText(text: string): { ok: boolean; detail: string } {
  const native = text.includes('generateKeyPairSync');
  const forgePrime = text.includes('generateProbablePrime');
  if (native && !forgePrime) {
    return { ok: true, detail: 'the bundle calls generateKeyPairSync and holds no node-forge prime search' };
  }
  return { ok: false, detail: `bundle: generateKeyPairSync ${native ? 'present' : 'ABSENT'}, generateProbablePrime ${forgePrime ? 'PRESENT' : 'absent'}` };
}

export function measureKeygen(runsPerType: number, injectKeyBundle: string | undefined): KeygenResult {
  const probe = path.join(__dirname, 'probes', 'keygen-probe.ts');
  // A run of 9 RSA 4096 keys takes well under a minute. Once in many runs the probe has hung
  // (no CPU, main thread in a futex wait, not reproduced since): it is stopped after 3 minutes
  // and run once more, and the progress line says so.
  const options = { what: 'the key generation probe', cwd: PROJECT_ROOT, timeout: 3 * 60_000, nice: TIMING_NICE };
  let out: string;
  try {
    out = runChild(TSX, [probe, String(runsPerType)], options);
  } catch (err) {
    process.stderr.write(`bench: keygenMs: ${(err as Error).message}; running the probe once more\n`);
    out = runChild(TSX, [probe, String(runsPerType)], options);
  }
  const parsed = JSON.parse(out.trim().split('\n').pop() as string) as ProbeOutput;
  const typeResult = (t: string): KeygenTypeResult => ({
    medianMs: round(median(parsed[t].runsMs), 2),
    runsMs: parsed[t].runsMs.map((v) => round(v, 2)),
    cpuMedianMs: round(median(parsed[t].cpuMs), 2),
    generatorCalls: parsed[t].calls,
  });

  const rsaCalls = parsed.rsa.calls;
  const forgeCalls = Object.entries(rsaCalls).filter(([k]) => k.startsWith('forge.')).reduce((s, [, v]) => s + v, 0);
  const native4096 = rsaCalls['crypto.generateKeyPairSync:rsa:4096'] ?? 0;
  const runtimeOk = native4096 === runsPerType && forgeCalls === 0 && parsed.rsa.publicKeyType === 'ssh-rsa' && parsed.rsa.fingerprintOk;
  const runtime = `${runtimeOk ? 'ok' : 'FAILED'}: ${runsPerType} RSA keys, native generateKeyPairSync(rsa, 4096) calls ${native4096}, node-forge generator calls ${forgeCalls}`;

  const source = checkKeysSource(fs.readFileSync(path.join(PROJECT_ROOT, 'lambdas', 'common', 'keys.ts'), 'utf8'));
  const bundle = injectKeyBundle && fs.existsSync(injectKeyBundle)
    ? checkBundleText(fs.readFileSync(injectKeyBundle, 'utf8'))
    : undefined;

  return {
    rsa: typeResult('rsa'),
    ed25519: typeResult('ed25519'),
    rsaPath: {
      native: runtimeOk && source.ok && (bundle?.ok ?? true),
      runtime,
      source: `${source.ok ? 'ok' : 'FAILED'}: ${source.detail}`,
      bundle: bundle ? `${bundle.ok ? 'ok' : 'FAILED'}: ${bundle.detail}` : 'not checked: no synthesized inject-key bundle',
    },
  };
}
