// A loopback-only reverse proxy that adds `Authorization: Bearer <key>` to every
// request and streams both ways (SSE included). The MCP conformance suite has no
// option for headers; this lets it reach Hangar's authenticated /mcp without any
// open default in Hangar itself.
//
// usage: node auth-proxy.mjs LISTEN_PORT TARGET_URL KEY_FILE
// Prints "listening <port>" on stdout once it accepts connections.
import http from 'node:http';
import fs from 'node:fs';

const [listenPort, target, keyFile] = process.argv.slice(2);
if (!listenPort || !target || !keyFile) {
  console.error('usage: node auth-proxy.mjs LISTEN_PORT TARGET_URL KEY_FILE');
  process.exit(2);
}
const key = fs.readFileSync(keyFile, 'utf8').trim();
const upstream = new URL(target);

const server = http.createServer((req, res) => {
  const headers = { ...req.headers, authorization: `Bearer ${key}` };
  // The suite's own Host/Origin headers go through unchanged: Hangar's
  // DNS-rebinding check must see what the suite sent.
  const out = http.request(
    {
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers,
    },
    (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    },
  );
  out.on('error', (e) => {
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'application/json' });
    }
    res.end(JSON.stringify({ error: 'BadGateway', message: String(e), status_code: 502 }));
  });
  // A client that goes away cancels the upstream request (MCP cancellation by
  // closing the stream).
  res.on('close', () => out.destroy());
  req.pipe(out);
});
server.listen(Number(listenPort), '127.0.0.1', () => {
  console.log(`listening ${server.address().port}`);
});
