// A real OIDC provider for the integration tests, on 127.0.0.1 only.
//
// Serves discovery and JWKS and issues RS256 JWT access tokens for the
// audience `urn:gatehouse`:
// - through the client-credentials grant, for the service clients below;
// - through the authorization-code flow with PKCE, for the web console
//   (client `gatehouse-console`, secret `gatehouse-console-secret`), with
//   the development login form (any password) and the people in `accounts`.
// Each start generates a new signing key (so the gateway's JWKS refresh on
// an unknown `kid` is exercised by restarting it).
// Usage: PORT=4444 CONSOLE_REDIRECT_URIS=https://127.0.0.1:15443/callback node idp.mjs
// (CONSOLE_REDIRECT_URIS: comma-separated; redirect URIs must match exactly).
import Provider from 'oidc-provider';
import { generateKeyPairSync, randomUUID } from 'node:crypto';

const port = Number(process.env.PORT || 4444);
const issuer = `http://127.0.0.1:${port}`;
const audience = 'urn:gatehouse';
// One confidential client per test identity; the groups claim rides in the token.
const clients = {
  'svc-analyst': ['analysts'],
  'svc-dba': ['dba'],
  'svc-nobody': [],
};
// People who sign in to the console; any other login gets no groups.
const accounts = {
  omar: ['approvers'],
  zoe: ['approvers'],
  alice: ['analysts'],
  bob: ['dba'],
  audrey: ['auditors'],
};
const consoleClient = 'gatehouse-console';
const consoleRedirects = (process.env.CONSOLE_REDIRECT_URIS || 'https://127.0.0.1:15443/callback')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  jwks: { keys: [{ ...key, kid: `k-${randomUUID().slice(0, 8)}`, use: 'sig', alg: 'RS256' }] },
  clients: [
    ...Object.keys(clients).map((id) => ({
      client_id: id,
      client_secret: `${id}-secret`,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
    })),
    {
      client_id: consoleClient,
      client_secret: `${consoleClient}-secret`,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: consoleRedirects,
    },
  ],
  claims: { openid: ['sub'], email: ['email'], groups: ['groups'] },
  scopes: ['openid', 'email', 'groups'],
  findAccount: (ctx, sub) => ({
    accountId: sub,
    claims: () => ({ sub, email: `${sub}@bank.test`, groups: accounts[sub] || [] }),
  }),
  features: {
    devInteractions: { enabled: true }, // login form at /interaction/:uid, any login/password
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => ({
        audience,
        scope: client.clientId === consoleClient ? 'email groups' : 'db',
        accessTokenFormat: 'jwt',
        accessTokenTTL: client.clientId === consoleClient ? 900 : 300,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  // Explicit lifetimes: the defaults print notices to stdout, and a test that
  // stops reading stdout would then kill the provider with EPIPE.
  ttl: {
    AccessToken: 900, AuthorizationCode: 60, ClientCredentials: 300, Grant: 3600, IdToken: 900, Interaction: 600, Session: 3600,
  },
  extraTokenClaims: (ctx, token) => (token.accountId
    ? { groups: accounts[token.accountId] || [], email: `${token.accountId}@bank.test` }
    : { groups: clients[token.clientId] || [], email: `${token.clientId}@example.test` }),
});

provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
