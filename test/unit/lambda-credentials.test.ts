import { createServer, type IncomingMessage, type Server } from 'http';
import type { AddressInfo } from 'net';
import { defaultProvider } from '@common/lambda-credentials';

/**
 * The credential provider bundled in place of the SDK's default chain: the execution role's keys
 * from the environment, else a container endpoint, else the SDK's error naming what is missing.
 */

const VARS = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_CONTAINER_CREDENTIALS_FULL_URI',
  'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN',
  'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE',
];
const saved: Record<string, string | undefined> = {};

beforeEach(() => {
  for (const v of VARS) {
    saved[v] = process.env[v];
    delete process.env[v];
  }
});

afterEach(() => {
  for (const v of VARS) {
    if (saved[v] === undefined) delete process.env[v];
    else process.env[v] = saved[v];
  }
});

/** A container credentials endpoint on 127.0.0.1 that records the requests it gets. */
async function containerEndpoint(): Promise<{ url: string; requests: IncomingMessage[]; close: () => Promise<void> }> {
  const requests: IncomingMessage[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(req);
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        AccessKeyId: 'ASIACONTAINER',
        SecretAccessKey: 'container-secret',
        Token: 'container-token',
        Expiration: new Date(Date.now() + 3600_000).toISOString(),
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/creds`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

test('the execution role keys in the environment, session token included', async () => {
  process.env.AWS_ACCESS_KEY_ID = 'ASIAENV';
  process.env.AWS_SECRET_ACCESS_KEY = 'env-secret';
  process.env.AWS_SESSION_TOKEN = 'env-token';
  const creds = await defaultProvider()();
  expect(creds).toMatchObject({ accessKeyId: 'ASIAENV', secretAccessKey: 'env-secret', sessionToken: 'env-token' });
});

test('the environment wins over a container endpoint, which is then not called', async () => {
  const endpoint = await containerEndpoint();
  try {
    process.env.AWS_ACCESS_KEY_ID = 'ASIAENV';
    process.env.AWS_SECRET_ACCESS_KEY = 'env-secret';
    process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = endpoint.url;
    const creds = await defaultProvider()();
    expect(creds.accessKeyId).toBe('ASIAENV');
    expect(endpoint.requests).toHaveLength(0);
  } finally {
    await endpoint.close();
  }
});

test('without keys in the environment, the container endpoint, with its authorization token', async () => {
  const endpoint = await containerEndpoint();
  try {
    process.env.AWS_CONTAINER_CREDENTIALS_FULL_URI = endpoint.url;
    process.env.AWS_CONTAINER_AUTHORIZATION_TOKEN = 'let-me-in';
    const creds = await defaultProvider()();
    expect(creds).toMatchObject({ accessKeyId: 'ASIACONTAINER', secretAccessKey: 'container-secret', sessionToken: 'container-token' });
    expect(creds.expiration).toBeInstanceOf(Date);
    expect(endpoint.requests).toHaveLength(1);
    expect(endpoint.requests[0].url).toBe('/creds');
    expect(endpoint.requests[0].headers.authorization).toBe('let-me-in');
  } finally {
    await endpoint.close();
  }
});

test('half a key pair is not credentials: with no container endpoint, the error names the environment', async () => {
  process.env.AWS_ACCESS_KEY_ID = 'ASIAENV';
  await expect(defaultProvider()()).rejects.toThrow(/environment variable credentials/);
});

test('with nothing at all, the error names the environment variables it looked for', async () => {
  await expect(defaultProvider()()).rejects.toThrow(/Unable to find environment variable credentials/);
});
