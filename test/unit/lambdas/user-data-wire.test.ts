/**
 * What the SDK puts on the wire for ModifyInstanceAttribute with Attribute userData and the base64
 * text as Value (a String in the botocore model): that text unchanged, the form AWS documents for
 * the CLI (user-data.html); EC2 requires it base64-encoded ("User data must be base64-encoded",
 * https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html). A real
 * client with a recording HTTP handler (no mock of the client).
 */
import { Readable } from 'stream';
import { gzipSync } from 'zlib';
import { EC2Client, ModifyInstanceAttributeCommand } from '@aws-sdk/client-ec2';

const INSTANCE_ID = 'i-0123456789abcdef0';

it('the SDK sends ModifyInstanceAttribute UserData base64-encoded on the wire, as EC2 requires', async () => {
  // Prepare: a real client whose HTTP handler records the request.
  let body = '';
  const client = new EC2Client({
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
    requestHandler: {
      handle: async (request: { body?: string }) => {
        body = String(request.body ?? '');
        return {
          response: {
            statusCode: 200,
            headers: { 'content-type': 'text/xml' },
            body: Readable.from([Buffer.from('<ModifyInstanceAttributeResponse><return>true</return></ModifyInstanceAttributeResponse>')]),
          },
        };
      },
    } as never,
  });
  const bytes = gzipSync(Buffer.from('#cloud-config\n'));

  // Act
  await client.send(new ModifyInstanceAttributeCommand({ InstanceId: INSTANCE_ID, Attribute: 'userData', Value: bytes.toString('base64') }));

  // Assess
  // The base64 text goes on the wire as it is (a String member: no second encoding).
  const form = new URLSearchParams(body);
  expect([form.get('Attribute'), form.get('Value')]).toEqual(['userData', bytes.toString('base64')]);
});
