// The queue and domain routes: what waits (read), hold, release and delete (admin)
// recorded in the delivery log as `token:<name>`; a domain's knowledge; evidence
// refused plainly when no signing key is configured; and no API GET changes state.
import { afterEach, describe, expect, it } from 'vitest';
import { isOperatorRecord } from '../../../src/store/store.ts';
import { sample, startApi, type ApiHarness } from './api-harness.ts';

let api: ApiHarness;
afterEach(async () => api?.close());

describe('queue routes', () => {
  it('list, hold, release and delete a message, each recorded with the token as operator', async () => {
    api = await startApi();
    const send = await api.token('app', ['send']);
    const ops = await api.token('ops', ['admin', 'read']);
    const id = (await api.request('POST', '/api/v1/messages', { token: send, json: sample({ to: ['a@clinic.test', 'b@clinic.test'] }) })).json().queueId as string;

    const list = await api.request('GET', '/api/v1/queue?limit=10', { token: ops });
    expect(list.statusCode).toBe(200);
    expect(list.json()).toMatchObject({ messages: [{ queueId: id, sender: 'lab@hospital.test', recipients: [{ recipient: 'a@clinic.test', state: 'queued' }, { recipient: 'b@clinic.test', state: 'queued' }] }], stats: { messages: 1, recipients: 2, held: 0 } });

    expect((await api.request('POST', `/api/v1/queue/${id}/hold`, { token: ops })).json()).toEqual({ queueId: id, action: 'hold', recipients: 2 });
    expect((await api.request('GET', '/api/v1/queue', { token: ops })).json().stats.held).toBe(2);
    expect((await api.request('POST', `/api/v1/queue/${id}/release`, { token: ops })).json()).toEqual({ queueId: id, action: 'release', recipients: 2 });
    expect((await api.request('DELETE', `/api/v1/queue/${id}`, { token: ops })).json()).toEqual({ queueId: id, action: 'delete', recipients: 2 });
    expect(await api.store.listQueue()).toEqual([]);

    const actions = (await api.store.queryLog({ message: id })).filter(isOperatorRecord);
    expect(actions.map((r) => `${r.action} ${r.recipient} ${r.operator}`)).toEqual([
      'hold a@clinic.test token:ops',
      'hold b@clinic.test token:ops',
      'release a@clinic.test token:ops',
      'release b@clinic.test token:ops',
      'delete a@clinic.test token:ops',
      'delete b@clinic.test token:ops',
    ]);
    // The timeline shows them.
    expect((await api.request('GET', `/api/v1/messages/${id}`, { token: ops })).json().entries.map((e: { kind?: string; action?: string }) => `${e.kind} ${e.action}`)).toContain('operator delete');
  });

  it('404 for a message not in the queue, 400 for a malformed id, and no operator record', async () => {
    api = await startApi();
    const ops = await api.token('ops', ['admin']);
    const gone = await api.request('POST', '/api/v1/queue/0000000000000000/hold', { token: ops });
    expect(gone.statusCode).toBe(404);
    expect(gone.json()).toMatchObject({ error: 'not_found', field: 'id' });
    const bad = await api.request('DELETE', '/api/v1/queue/..%2F..%2Fetc', { token: ops });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ field: 'id' });
    expect(await api.store.queryLog({})).toEqual([]);
  });
});

it("GET /api/v1/domains/:domain answers the relay's knowledge and MTA-STS policy, or nulls", async () => {
  api = await startApi();
  const read = await api.token('r', ['read']);
  await api.store.recordProbe('clinic.test', { at: 1_700_000_000_000, starttlsOffered: true, tlsOk: true });
  await api.store.setMtaStsPolicy('clinic.test', JSON.stringify({ mode: 'enforce', mx: ['mx.clinic.test'], max_age: 86400 }));
  const known = (await api.request('GET', '/api/v1/domains/Clinic.Test', { token: read })).json();
  expect(known).toMatchObject({ domain: 'clinic.test', knowledge: { lastProbeAt: 1_700_000_000_000, lastProbeTlsOk: true, tlsKnownSince: null }, mtaSts: { mode: 'enforce', mx: ['mx.clinic.test'] } });
  expect((await api.request('GET', '/api/v1/domains/unknown.test', { token: read })).json()).toEqual({ domain: 'unknown.test', knowledge: null, mtaSts: null });
  expect((await api.request('GET', '/api/v1/domains/bad_domain!', { token: read })).statusCode).toBe(400);
});

it('evidence without evidence.signing_key_file is a 503 that says what to configure', async () => {
  api = await startApi();
  const token = await api.token('r', ['read', 'send']);
  const id = (await api.request('POST', '/api/v1/messages', { token, json: sample() })).json().queueId;
  const res = await api.request('GET', `/api/v1/messages/${id}/evidence`, { token });
  expect(res.statusCode).toBe(503);
  expect(res.json()).toMatchObject({ error: 'evidence_unavailable', message: expect.stringContaining('evidence.signing_key_file') });
});

it('no API GET or HEAD changes state, authenticated or not', async () => {
  api = await startApi({ api: { auth_failure_limit: 2 } });
  const send = await api.token('app', ['send']);
  const all = await api.token('all', ['read', 'admin']);
  const id = (await api.request('POST', '/api/v1/messages', { token: send, json: sample() })).json().queueId as string;
  // A failed POST on record, so that a GET counting failures would show.
  await api.request('POST', '/api/v1/messages', { headers: { authorization: 'Bearer nope' }, json: sample() });
  const getRoutes = [...new Set(api.server.routes.filter((r) => r.method === 'GET' && r.url.startsWith('/api/')).map((r) => r.url))].sort();
  const samples: Record<string, string> = {
    '/api/v1/messages': '/api/v1/messages?recipient=pat@clinic.test',
    '/api/v1/messages/:id': `/api/v1/messages/${id}`,
    '/api/v1/messages/:id/evidence': `/api/v1/messages/${id}/evidence`,
    '/api/v1/queue': '/api/v1/queue',
    '/api/v1/domains/:domain': '/api/v1/domains/clinic.test',
    '/api/v1/openapi.json': '/api/v1/openapi.json',
    '/api/v1/reports': '/api/v1/reports?since=7d&split=domain&bucket=day&format=csv',
  };
  expect(getRoutes).toEqual(Object.keys(samples).sort());
  // Once, so that the token's last use (bookkeeping, left out of the probe) is written before the snapshot.
  await api.request('GET', '/api/v1/queue', { token: all });
  const before = await api.server.stateProbes.snapshot();
  for (const url of Object.values(samples)) {
    for (const method of ['GET', 'HEAD'] as const) {
      for (const auth of [{ token: all }, {}, { headers: { authorization: 'Bearer sr_0000000000000000_' + 'D'.repeat(43) } }]) {
        await api.request(method, url, auth);
        expect(await api.server.stateProbes.snapshot(), `${method} ${url}`).toEqual(before);
      }
    }
  }
});
