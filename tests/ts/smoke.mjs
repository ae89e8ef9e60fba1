// Drives devboxd with the official TypeScript client (@runloop/api-client) on its default Node transport,
// which is HTTP/2 over node:http2 (cleartext prior knowledge for an http:// base URL): create, exec, files,
// suspend/resume, snapshot. Prints one JSON line of results; exits non-zero with a message on any failure.
// Env: DEVBOX_URL (base URL), DEVBOX_KEY (bearer token). Run by tests/api/test_typescript_client.py.
import http2 from 'node:http2';
import { randomBytes } from 'node:crypto';
import { RunloopSDK, toFile } from '@runloop/api-client';

const baseURL = process.env.DEVBOX_URL;
const bearerToken = process.env.DEVBOX_KEY;
if (!baseURL || !bearerToken) {
  console.error('smoke.mjs: set DEVBOX_URL and DEVBOX_KEY');
  process.exit(2);
}

// Count the HTTP/2 sessions and streams the client opens, to prove the default transport really is HTTP/2
// (the client falls back to HTTP/1.1 via node-fetch only when told to). The client calls http2.connect on
// this same module object, so wrapping it here sees every connection.
const transport = { h2Sessions: 0, h2Streams: 0, h2Goaways: 0, h2SessionErrors: 0 };
const originalConnect = http2.connect;
http2.connect = (...args) => {
  const session = originalConnect.apply(http2, args);
  transport.h2Sessions += 1;
  session.on('goaway', () => (transport.h2Goaways += 1));
  session.on('error', () => (transport.h2SessionErrors += 1));
  const originalRequest = session.request.bind(session);
  session.request = (...requestArgs) => {
    transport.h2Streams += 1;
    return originalRequest(...requestArgs);
  };
  return session;
};

const results = { clientVersion: null, steps: [] };
const cleanups = [];

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function step(name, body) {
  try {
    const detail = await body();
    results.steps.push(name);
    return detail;
  } catch (error) {
    const status = error?.status ? ` (HTTP ${error.status})` : '';
    throw new Error(`step "${name}" failed${status}: ${error?.message ?? error}`, { cause: error });
  }
}

async function main() {
  // maxRetries 0: a server error must fail the run, not be hidden by a retry.
  const sdk = new RunloopSDK({ baseURL, bearerToken, maxRetries: 0, timeout: 120_000 });
  const api = sdk.api;
  const { VERSION } = await import('@runloop/api-client/version');
  results.clientVersion = VERSION;
  const polling = { longPoll: { timeoutMs: 300_000 } }; // generous: the machine may be busy

  const devbox = await step('create and await running', async () => {
    const created = await sdk.devbox.create({ name: 'ts-client-smoke' }, polling);
    cleanups.push(() => created.shutdown());
    const info = await created.getInfo();
    check(info.status === 'running', `expected running, got ${info.status}`);
    return created;
  });
  results.devboxId = devbox.id;

  await step('exec (object API)', async () => {
    const execution = await devbox.cmd.exec('echo hello-from-ts && echo oops >&2; exit 3');
    check(execution.exitCode === 3, `exit code ${execution.exitCode}, expected 3`);
    const stdout = await execution.stdout();
    const stderr = await execution.stderr();
    check(stdout === 'hello-from-ts\n', `stdout ${JSON.stringify(stdout)}`);
    check(stderr === 'oops\n', `stderr ${JSON.stringify(stderr)}`);
  });

  await step('executeSync', async () => {
    const view = await api.devboxes.executeSync(devbox.id, { command: 'printf %s "$((6 * 7))"' });
    check(view.exit_status === 0, `exit_status ${view.exit_status}`);
    check(view.stdout === '42', `stdout ${JSON.stringify(view.stdout)}`);
  });

  await step('executeAndAwaitCompletion', async () => {
    const view = await api.devboxes.executeAndAwaitCompletion(devbox.id, { command: 'sleep 1; echo done' });
    check(view.status === 'completed', `status ${view.status}`);
    check(view.exit_status === 0, `exit_status ${view.exit_status}`);
    check(view.stdout === 'done\n', `stdout ${JSON.stringify(view.stdout)}`);
  });

  const textContents = `written by the TypeScript client\nline two ${Date.now()}\n`;
  await step('write and read a file', async () => {
    await devbox.file.write({ file_path: '/home/user/ts-note.txt', contents: textContents });
    const readBack = await devbox.file.read({ file_path: '/home/user/ts-note.txt' });
    check(readBack === textContents, `read back ${JSON.stringify(readBack)}`);
  });

  const binary = Buffer.concat([Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0a, 0x0d]), randomBytes(4096)]);
  await step('upload and download a binary file', async () => {
    await devbox.file.upload({ path: '/home/user/blob.bin', file: await toFile(binary, 'blob.bin') });
    const response = await devbox.file.download({ path: '/home/user/blob.bin' });
    const downloaded = Buffer.from(await response.arrayBuffer());
    check(downloaded.equals(binary), `downloaded ${downloaded.length} bytes that differ from the ${binary.length} uploaded`);
    const sum = await api.devboxes.executeSync(devbox.id, { command: 'wc -c < /home/user/blob.bin' });
    check(sum.stdout.trim() === String(binary.length), `size in the devbox ${JSON.stringify(sum.stdout)}`);
  });

  await step('suspend and await suspended', async () => {
    await devbox.suspend();
    const view = await devbox.awaitSuspended(polling);
    check(view.status === 'suspended', `status ${view.status}`);
  });

  await step('resume and await running', async () => {
    const view = await devbox.resume(polling);
    check(view.status === 'running', `status ${view.status}`);
    const readBack = await devbox.file.read({ file_path: '/home/user/ts-note.txt' });
    check(readBack === textContents, `file after resume ${JSON.stringify(readBack)}`);
  });

  const snapshot = await step('snapshot the disk (sync)', async () => {
    const view = await api.devboxes.snapshotDisk(devbox.id, { name: 'ts-client-smoke' });
    cleanups.push(() => api.devboxes.deleteDiskSnapshot(view.id));
    check(view.id && view.source_devbox_id === devbox.id, `snapshot view ${JSON.stringify(view)}`);
    const status = await sdk.snapshot.fromId(view.id).awaitCompleted(polling);
    check(status.status === 'complete', `snapshot status ${JSON.stringify(status)}`);
    return view;
  });
  results.snapshotId = snapshot.id;

  await step('create a devbox from the snapshot', async () => {
    const restored = await sdk.devbox.createFromSnapshot(snapshot.id, { name: 'ts-client-smoke-restored' }, polling);
    cleanups.push(() => restored.shutdown());
    results.restoredDevboxId = restored.id;
    const readBack = await restored.file.read({ file_path: '/home/user/ts-note.txt' });
    check(readBack === textContents, `file in the restored devbox ${JSON.stringify(readBack)}`);
    const response = await restored.file.download({ path: '/home/user/blob.bin' });
    check(Buffer.from(await response.arrayBuffer()).equals(binary), 'binary file differs in the restored devbox');
  });

  await step('shut down', async () => {
    // Devboxes first (newest first), then the snapshot; each cleanup runs once.
    while (cleanups.length) await cleanups.pop()();
    const view = await api.devboxes.retrieve(devbox.id);
    check(view.status === 'shutdown', `status after shutdown ${view.status}`);
  });

  check(transport.h2Sessions > 0 && transport.h2Streams > 0, 'the client did not use HTTP/2');
  results.transport = transport;
  results.ok = true;
}

try {
  await main();
  console.log(JSON.stringify(results));
} catch (error) {
  // Best effort: leave nothing running, but report the first failure.
  while (cleanups.length) {
    try {
      await cleanups.pop()();
    } catch {
      // already gone or the server is down; the test server's teardown removes its containers anyway
    }
  }
  results.ok = false;
  results.transport = transport;
  results.error = String(error?.message ?? error);
  console.log(JSON.stringify(results));
  console.error(error?.message ?? error);
  if (error?.cause?.stack) console.error(error.cause.stack);
  process.exitCode = 1;
}
