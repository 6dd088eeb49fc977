// A fast stand-in for the Messages API, for benchmarks only: answers every
// POST with a small fixed JSON message (with usage) after reading the body,
// so the upstream is not what a benchmark measures. Loopback only.
const http = require('http');
const body = JSON.stringify({
  id: 'msg_bench', type: 'message', role: 'assistant', model: 'claude-haiku-4-5',
  content: [{type: 'text', text: 'ok'}], stop_reason: 'end_turn', stop_sequence: null,
  usage: {input_tokens: 12, cache_creation_input_tokens: 0, cache_read_input_tokens: 0,
          output_tokens: 1}});
const server = http.createServer((req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    res.writeHead(200, {'content-type': 'application/json', 'content-length': body.length});
    res.end(body);
  });
});
server.keepAliveTimeout = 65000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(String(server.address().port) + '\n');
});
