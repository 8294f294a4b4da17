// A real OpenID Connect provider for the single sign-on tests: panva's certified
// `oidc-provider`, configured from a JSON file the fixture writes
// (tests/servers/oidc_provider.py):
//
//   node provider.mjs CONFIG.json
//   {"port": 40123, "issuer": "http://127.0.0.1:40123",
//    "clients": [{"client_id": ..., "client_secret": ..., "redirect_uris": [...]}],
//    "accounts": {"olivia": {"email": ..., "name": ..., "groups": ["backup-ops"]}}}
//
// Sign-in uses the library's own development login form (any password; the account
// is the login name), so the test drives the provider's real pages and redirects.
// PKCE is required of every client, so a relying party that sends no S256 challenge
// is refused by the provider itself. Consent is granted for the known clients (they
// are first-party), as a company's provider does for its own applications.
import { readFileSync } from "node:fs";

import Provider from "oidc-provider";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));

function findAccount(_ctx, sub) {
  const account = config.accounts[sub];
  if (!account) return undefined;
  return {
    accountId: sub,
    async claims() {
      return { sub, preferred_username: sub, ...account };
    },
  };
}

async function loadExistingGrant(ctx) {
  const grantId = ctx.oidc.result?.consent?.grantId
    || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
  if (grantId) return ctx.oidc.provider.Grant.find(grantId);
  const grant = new ctx.oidc.provider.Grant({
    clientId: ctx.oidc.client.clientId,
    accountId: ctx.oidc.session.accountId,
  });
  grant.addOIDCScope("openid email profile groups");
  await grant.save();
  return grant;
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  findAccount,
  loadExistingGrant,
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name", "preferred_username"],
    groups: ["groups"],
  },
  scopes: ["openid", "email", "profile", "groups"],
  pkce: { required: () => true },
  cookies: { keys: ["mackuper-test-provider-cookie-key"] },
  features: { devInteractions: { enabled: true } },
});

provider.on("server_error", (_ctx, error) => console.error("server_error", error));

provider.listen(config.port, "127.0.0.1", () => {
  console.log(`oidc-provider listening on ${config.issuer}`);
});
