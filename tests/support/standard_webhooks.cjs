// Verifies webhook deliveries with the Standard Webhooks library for TypeScript, as a team's
// Node.js backend would (tests/test_webhooks.py): reads {secret, deliveries: [{headers, body}]}
// on stdin and prints, for each delivery, the event the library returned or the error it threw.
const { Webhook } = require("standardwebhooks");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const { secret, deliveries } = JSON.parse(input);
  const webhook = new Webhook(secret);
  const results = deliveries.map(({ headers, body }) => {
    try {
      return { event: webhook.verify(body, headers) };
    } catch (error) {
      return { error: error.message };
    }
  });
  process.stdout.write(JSON.stringify(results));
});
