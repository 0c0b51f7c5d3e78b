// A real OpenID Provider for Coffer's tests: panva's certified `oidc-provider`, on loopback.
//
// Environment (set by tests/api/oidc_support.rs):
//   OP_PORT           port on 127.0.0.1 (the issuer is http://127.0.0.1:OP_PORT)
//   OP_REDIRECT_URI   Coffer's callback, registered for the client `coffer`
//   OP_KEY_FILE       the signing key (a private JWK); made with OP_KID when missing. A test
//                     restarts the provider with another file to rotate the key.
//   OP_ACCOUNTS       a JSON file {accountId: claims}, read at every sign-in, so a test can
//                     change a user's groups between sign-ins.
//   OP_USERINFO_ONLY  "1": the ID token carries only the required claims (as Zitadel and some
//                     Entra set-ups do); e-mail and groups come from the userinfo endpoint.
//   OP_TAMPER         empty for an honest provider. Otherwise the provider misbehaves in one
//                     way, to prove Coffer refuses it: the ID token the token endpoint hands out
//                     is re-signed with the provider's own key after one change:
//                       aud   -> aud names another client
//                       nonce -> another nonce
//                       exp   -> expired an hour ago
//                       alg   -> signed with RS384 (same key; outside Coffer's allow-list)
//                     Everything else (the flow, PKCE, the key, the kid) is the real provider's.
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.env.OP_PORT);
const issuer = `http://127.0.0.1:${port}`;
const keyFile = process.env.OP_KEY_FILE;
const tamper = process.env.OP_TAMPER || '';

if (!existsSync(keyFile)) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: process.env.OP_KID || 'k1', alg: 'RS256', use: 'sig' };
  writeFileSync(keyFile, JSON.stringify(jwk));
}
const key = JSON.parse(readFileSync(keyFile, 'utf8'));
const accounts = () => JSON.parse(readFileSync(process.env.OP_ACCOUNTS, 'utf8'));

const scopes = ['openid', 'email', 'profile', 'groups'];
const claims = { openid: ['sub'], email: ['email', 'email_verified'], profile: ['preferred_username', 'name'], groups: ['groups'] };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'coffer',
    client_secret: 'coffer-test-secret',
    redirect_uris: [process.env.OP_REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [key] },
  pkce: { required: () => true },
  scopes,
  claims,
  // The scope claims go into the ID token (as Google and most providers do), unless the test
  // wants them from userinfo only.
  conformIdTokenClaims: process.env.OP_USERINFO_ONLY === '1',
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['coffer-test-cookie-key'] },
  ttl: { IdToken: 3600, AccessToken: 3600, AuthorizationCode: 600, Interaction: 600, Session: 3600, Grant: 3600 },
  // A first-party client: consent is given, only the login form is shown.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(scopes.join(' '));
    grant.addOIDCClaims(Object.values(claims).flat());
    await grant.save();
    return grant;
  },
  async findAccount(ctx, id) {
    const account = accounts()[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
});
provider.proxy = false;

const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

function resign(idToken) {
  const [header, payload] = idToken.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url')));
  let digest = 'sha256';
  if (tamper === 'aud') payload.aud = 'someone-else';
  if (tamper === 'nonce') payload.nonce = 'not-the-nonce-coffer-sent';
  if (tamper === 'exp') { payload.iat -= 7200; payload.exp = Math.floor(Date.now() / 1000) - 3600; }
  if (tamper === 'alg') { header.alg = 'RS384'; digest = 'sha384'; }
  const signed = `${b64(header)}.${b64(payload)}`;
  const signature = sign(digest, Buffer.from(signed), createPrivateKey({ key, format: 'jwk' }));
  return `${signed}.${signature.toString('base64url')}`;
}

if (tamper) {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && ctx.status === 200 && ctx.body?.id_token) {
      ctx.body = { ...ctx.body, id_token: resign(ctx.body.id_token) };
    }
  });
}

provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer}\n`);
});
