// free-port: a loopback TCP port nobody is using right now, for servers that
// cannot listen on port 0 and report back (Postfix's smtpd takes its port from
// master.cf). Bind port 0, read the port, close. Another process could take it
// in between; on a benchmark box that race is theoretical and start-up fails
// loudly if it happens.
import net from 'node:net';

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
