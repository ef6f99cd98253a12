/**
 * Child-process probe for bench/keygen.ts: spies on every RSA generator that could run (Node's
 * native crypto and node-forge's pure-JS generator and prime search), then times
 * `generateKeyPair` from lambdas/common/keys.ts. Prints one JSON line with timings and call
 * counts, never key material. Usage: tsx bench/probes/keygen-probe.ts <runsPerType>
 */
/* eslint-disable @typescript-eslint/no-require-imports */
import * as crypto from 'crypto';

type Counts = Record<string, number>;
const calls: Counts = {};
function count(name: string): void {
  calls[name] = (calls[name] ?? 0) + 1;
}

// Spies are installed before keys.ts is loaded, on the module objects it will call through.
const nodeCrypto = require('crypto') as typeof crypto & Record<string, unknown>;
const nativeSync = nodeCrypto.generateKeyPairSync;
nodeCrypto.generateKeyPairSync = function spySync(this: unknown, ...args: unknown[]) {
  const [type, options] = args as [string, { modulusLength?: number } | undefined];
  count(`crypto.generateKeyPairSync:${type}${options?.modulusLength ? `:${options.modulusLength}` : ''}`);
  return (nativeSync as (...a: unknown[]) => unknown).apply(this, args);
} as typeof crypto.generateKeyPairSync;
const nativeAsync = nodeCrypto.generateKeyPair;
nodeCrypto.generateKeyPair = function spyAsync(this: unknown, ...args: unknown[]) {
  count(`crypto.generateKeyPair:${String(args[0])}`);
  return (nativeAsync as (...a: unknown[]) => unknown).apply(this, args);
} as typeof crypto.generateKeyPair;

interface ForgeLike {
  pki: { rsa: { generateKeyPair: (...a: unknown[]) => unknown } };
  prime: { generateProbablePrime: (...a: unknown[]) => unknown };
}
const forge = require('node-forge/lib/forge') as ForgeLike;
require('node-forge/lib/rsa');
require('node-forge/lib/prime');
const forgeGenerate = forge.pki.rsa.generateKeyPair;
forge.pki.rsa.generateKeyPair = function spyForge(this: unknown, ...args: unknown[]) {
  count('forge.pki.rsa.generateKeyPair');
  return forgeGenerate.apply(this, args);
};
const forgePrime = forge.prime.generateProbablePrime;
forge.prime.generateProbablePrime = function spyPrime(this: unknown, ...args: unknown[]) {
  count('forge.prime.generateProbablePrime');
  return forgePrime.apply(this, args);
};

const keys = require('../../lambdas/common/keys') as typeof import('../../lambdas/common/keys');

const runs = Math.max(1, Number(process.argv[2] ?? '5'));
const result: Record<string, { runsMs: number[]; cpuMs: number[]; calls: Counts; publicKeyType: string; fingerprintOk: boolean }> = {};
for (const type of ['rsa', 'ed25519'] as const) {
  for (const k of Object.keys(calls)) delete calls[k];
  const runsMs: number[] = [];
  const cpuMs: number[] = [];
  let publicKeyType = '';
  let fingerprintOk = true;
  for (let i = 0; i < runs; i += 1) {
    const cpu = process.cpuUsage();
    const start = process.hrtime.bigint();
    const pair = keys.generateKeyPair(type);
    runsMs.push(Number(process.hrtime.bigint() - start) / 1e6);
    const used = process.cpuUsage(cpu);
    cpuMs.push((used.user + used.system) / 1000);
    publicKeyType = pair.publicKey.split(' ')[0];
    fingerprintOk = fingerprintOk && keys.parseOpenSshPublicKey(pair.publicKey).fingerprint === pair.fingerprint;
  }
  result[type] = { runsMs, cpuMs, calls: { ...calls }, publicKeyType, fingerprintOk };
}
process.stdout.write(`${JSON.stringify(result)}\n`);
