// A real OIDC provider for the integration tests, on 127.0.0.1 only.
//
// Serves discovery and JWKS and issues RS256 JWT access tokens for the
// audience `urn:gatehouse` through the client-credentials grant. Each start
// generates a new signing key (so the gateway's JWKS refresh on an unknown
// `kid` is exercised by restarting it). Usage: PORT=4444 node idp.mjs
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
const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  jwks: { keys: [{ ...key, kid: `k-${randomUUID().slice(0, 8)}`, use: 'sig', alg: 'RS256' }] },
  clients: Object.keys(clients).map((id) => ({
    client_id: id,
    client_secret: `${id}-secret`,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
  })),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        audience,
        scope: 'db',
        accessTokenFormat: 'jwt',
        accessTokenTTL: 300,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  extraTokenClaims: (ctx, token) => ({
    groups: clients[token.clientId] || [],
    email: `${token.clientId}@example.test`,
  }),
});

provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
