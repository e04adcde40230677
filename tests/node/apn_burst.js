// Sends one background notification to each token at once through @parse/node-apn, on a new
// connection, and prints what the library reports (JSON). Used by tests/integration/test_first_flight.py.
// usage: node apn_burst.js HOST PORT CA_FILE KEY_FILE KEY_ID TEAM_ID TOPIC TOKEN...
const fs = require('fs');
const apn = require('@parse/node-apn');

const [address, port, ca, keyFile, keyId, teamId, topic, ...tokens] = process.argv.slice(2);
const provider = new apn.Provider({
  token: {key: fs.readFileSync(keyFile), keyId, teamId},
  production: false,
  address,
  port: Number(port),
  ca: fs.readFileSync(ca),
});
const note = new apn.Notification();
note.contentAvailable = 1;
note.pushType = 'background';
note.priority = 5;
note.topic = topic;
provider.send(note, tokens).then((result) => {
  console.log(JSON.stringify({
    sent: result.sent.map((s) => s.device),
    failed: result.failed.map((f) => ({device: f.device, status: f.status, response: f.response,
                                        error: f.error ? String(f.error) : undefined})),
  }));
  provider.shutdown();
});
