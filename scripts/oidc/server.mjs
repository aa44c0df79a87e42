// A real OpenID Connect issuer for portcullis-jwt's tests: oidc-provider
// (an OpenID-certified provider) on loopback, issuing RS256 JWT access tokens
// by the client_credentials grant, with discovery and a JWKS.
//
// Test-only admin routes, on the same port:
//   POST /__admin/rotate  new signing key; the JWKS then holds [new, ...old]
//   POST /__admin/down    every other request has its connection dropped
//   POST /__admin/up      back to normal
//   GET  /__admin/health  200 while the process runs
//   POST /__admin/id-token?sub=S  an ID token for the client, minted by the
//                         provider's own IdToken model and signing keys (a
//                         real user sign-in needs a browser interaction);
//                         answers {"id_token": "..."}
//
// Environment: OIDC_PORT (default 47801).
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT || 47801);
const issuer = `http://127.0.0.1:${port}`;
export const CLIENT_ID = 'portcullis';
export const CLIENT_SECRET = 'portcullis-test-secret';
const RESOURCE = 'urn:portcullis:api';

const keys = [];
let provider;
let handler;
let down = false;
let generation = 0;

function newKey() {
  generation += 1;
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `test-key-${generation}-${crypto.randomBytes(4).toString('hex')}`, alg: 'RS256', use: 'sig' };
}

function build() {
  provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'loyalty/read loyalty/write',
    }],
    jwks: { keys },
    scopes: ['loyalty/read', 'loyalty/write'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'loyalty/read loyalty/write',
          audience: RESOURCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 3600,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    extraTokenClaims: () => ({ 'cognito:groups': ['members'], username: CLIENT_ID }),
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  handler = provider.callback();
}

// An ID token as the provider issues it at the end of a sign-in: its
// IdToken model, the client's signing algorithm (RS256), the current keys.
async function mintIdToken(sub) {
  const client = await provider.Client.find(CLIENT_ID);
  const token = new provider.IdToken({ sub }, { client });
  token.scope = 'openid';
  token.set('cognito:groups', ['members']);
  token.set('auth_time', Math.floor(Date.now() / 1000));
  return token.issue({ use: 'idtoken' });
}

keys.unshift(newKey());
build();

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/__admin/')) {
    const action = req.url.slice('/__admin/'.length);
    if (action === 'health') {
      res.end('ok');
    } else if (action === 'rotate' && req.method === 'POST') {
      keys.unshift(newKey());
      build();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ kid: keys[0].kid }));
    } else if (action.startsWith('id-token') && req.method === 'POST') {
      const sub = new URL(req.url, issuer).searchParams.get('sub') || 'test-user';
      mintIdToken(sub).then((idToken) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ id_token: idToken }));
      }, (err) => {
        console.error('id-token', err);
        res.statusCode = 500;
        res.end(String(err));
      });
    } else if (action === 'down' && req.method === 'POST') {
      down = true;
      res.end('down');
    } else if (action === 'up' && req.method === 'POST') {
      down = false;
      res.end('up');
    } else {
      res.statusCode = 404;
      res.end();
    }
    return;
  }
  if (down) {
    req.socket.destroy();
    return;
  }
  handler(req, res);
});
server.keepAliveTimeout = 1000;
server.listen(port, '127.0.0.1', () => {
  console.log(`oidc test issuer on ${issuer}`);
});
