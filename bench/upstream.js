// A fast stand-in for the Messages API, for benchmarks only, so that the
// upstream is not what a benchmark measures. Loopback only; prints its port
// on the first line of stdout.
//
//   POST /v1/messages                   reads the body; a fixed JSON message
//                                       with usage, or with "stream": true
//                                       an SSE stream (below)
//   POST /v1/messages/count_tokens      {"input_tokens": 12}
//   POST /v1/{metrics,logs,traces}      200, empty (an OTLP sink)
//   GET /_stats                         what it has served, as JSON
//
// SSE: message_start (usage), content_block_start, ping, N
// content_block_delta events, content_block_stop, message_delta (usage),
// message_stop: N + 6 events in all. Every event is its own write (its own
// chunk); BENCH_SSE_DELAY_MS > 0 waits that long between events, 0 only
// yields to the event loop. A streaming request whose body holds
// "user_id": "bench-pace-<ms>" (metadata.user_id, which the gateway passes
// on as it is) is paced instead: <ms> before each event, the first one too,
// as a model takes time to its first token and between tokens (bench/run.py's
// "paced" cells).
//
// Environment: BENCH_SSE_DELTAS (default 6, i.e. 12 events),
// BENCH_SSE_DELAY_MS (default 0), BENCH_PORT (default: any free port).
'use strict';
const http = require('http');

const DELTAS = parseInt(process.env.BENCH_SSE_DELTAS || '6', 10);
const DELAY = parseFloat(process.env.BENCH_SSE_DELAY_MS || '0');
const MODEL = 'claude-haiku-4-5-20251001';
const USAGE = {input_tokens: 12, cache_creation_input_tokens: 0, cache_read_input_tokens: 0,
               output_tokens: DELTAS};

const jsonBody = Buffer.from(JSON.stringify({
  id: 'msg_bench', type: 'message', role: 'assistant', model: MODEL,
  content: [{type: 'text', text: 'ok'}], stop_reason: 'end_turn', stop_sequence: null,
  usage: USAGE}));
const countBody = Buffer.from('{"input_tokens":12}');

function ev(name, data) {
  return Buffer.from(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
}
const sseEvents = [
  ev('message_start', {type: 'message_start', message: {
    id: 'msg_bench', type: 'message', role: 'assistant', model: MODEL, content: [],
    stop_reason: null, stop_sequence: null,
    usage: {input_tokens: 12, cache_creation_input_tokens: 0, cache_read_input_tokens: 0,
            output_tokens: 1}}}),
  ev('content_block_start', {type: 'content_block_start', index: 0,
                             content_block: {type: 'text', text: ''}}),
  ev('ping', {type: 'ping'}),
];
for (let i = 0; i < DELTAS; i++) {
  sseEvents.push(ev('content_block_delta', {type: 'content_block_delta', index: 0,
                                            delta: {type: 'text_delta', text: 'tok' + i + ' '}}));
}
sseEvents.push(ev('content_block_stop', {type: 'content_block_stop', index: 0}));
sseEvents.push(ev('message_delta', {type: 'message_delta',
                                    delta: {stop_reason: 'end_turn', stop_sequence: null},
                                    usage: {output_tokens: DELTAS}}));
sseEvents.push(ev('message_stop', {type: 'message_stop'}));

const STREAM_RE = /"stream"\s*:\s*true/;
const PACE_RE = /"user_id"\s*:\s*"bench-pace-(\d+(?:\.\d+)?)"/;
const stats = {json: 0, sse: 0, paced: 0, count_tokens: 0, otlp: 0, otlp_bytes: 0,
               connections: 0};

function stream(res, pace) {
  res.writeHead(200, {'content-type': 'text/event-stream', 'cache-control': 'no-cache'});
  const gap = pace > 0 ? pace : DELAY;
  let i = 0;
  const next = () => {
    res.write(sseEvents[i++]);
    if (i === sseEvents.length) {
      res.end();
    } else if (gap > 0) {
      setTimeout(next, gap);
    } else {
      setImmediate(next);
    }
  };
  if (pace > 0) {
    setTimeout(next, pace); // the headers go with the first event
  } else {
    next();
  }
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const url = req.url;
    if (req.method === 'GET' && url === '/_stats') {
      const b = Buffer.from(JSON.stringify(stats));
      res.writeHead(200, {'content-type': 'application/json', 'content-length': b.length});
      res.end(b);
    } else if (req.method !== 'POST') {
      res.writeHead(404, {'content-length': 0});
      res.end();
    } else if (url.startsWith('/v1/messages/count_tokens')) {
      stats.count_tokens++;
      res.writeHead(200, {'content-type': 'application/json', 'content-length': countBody.length});
      res.end(countBody);
    } else if (url.startsWith('/v1/messages')) {
      const body = Buffer.concat(chunks).toString('latin1');
      if (STREAM_RE.test(body)) {
        const m = PACE_RE.exec(body);
        stats.sse++; // paced streams too; stats.paced counts those apart
        if (m) {
          stats.paced++;
        }
        stream(res, m ? parseFloat(m[1]) : 0);
      } else {
        stats.json++;
        res.writeHead(200, {'content-type': 'application/json', 'content-length': jsonBody.length,
                            'request-id': 'req_bench'});
        res.end(jsonBody);
      }
    } else if (/^\/v1\/(metrics|logs|traces)/.test(url)) {
      stats.otlp++;
      stats.otlp_bytes += chunks.reduce((n, c) => n + c.length, 0);
      res.writeHead(200, {'content-length': 0});
      res.end();
    } else {
      res.writeHead(404, {'content-length': 0});
      res.end();
    }
  });
});
server.on('connection', () => { stats.connections++; });
server.keepAliveTimeout = 65000;
server.headersTimeout = 66000;
server.listen(parseInt(process.env.BENCH_PORT || '0', 10), '127.0.0.1', () => {
  process.stdout.write(String(server.address().port) + '\n');
});
