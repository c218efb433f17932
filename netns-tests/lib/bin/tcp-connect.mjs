// One TCP connection attempt: prints "connected" (and the server's answer)
// or "failed: REASON". Usage: node tcp-connect.mjs HOST PORT TIMEOUT_MS
import { connect } from 'node:net';

const [host, port, timeoutMs] = process.argv.slice(2);
const socket = connect({ host, port: Number(port) });
const timer = setTimeout(() => {
  console.log('failed: timeout');
  socket.destroy();
  process.exit(1);
}, Number(timeoutMs));
let answer = '';
socket.on('data', (data) => (answer += data));
socket.on('end', () => {
  clearTimeout(timer);
  console.log(`connected ${answer.trim()}`);
  process.exit(0);
});
socket.on('error', (error) => {
  clearTimeout(timer);
  console.log(`failed: ${error.code ?? error.message}`);
  process.exit(1);
});
