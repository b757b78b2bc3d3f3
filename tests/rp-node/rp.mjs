// An independent relying party for dancu's OpenID Connect provider, built on openid-client.
// It drives code + PKCE + PAR + private_key_jwt + DPoP end to end, letting openid-client check
// the ID token strictly (signature against the JWKS, iss, aud, nonce, expiry) and the RFC 9207
// iss of the authorization response; the login and consent pages are filled in with fetch.
//
// Input (environment): DANCU_ISSUER, DANCU_CLIENT_ID, DANCU_CLIENT_JWK (the client's private
// P-256 key as a JWK), DANCU_REDIRECT_URI, DANCU_ID_NUMBER, DANCU_PASSCODE.
// Output: one JSON line with what the relying party verified; exit status 1 on any failure.
import * as client from 'openid-client';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const issuer = new URL(env('DANCU_ISSUER'));
const clientId = env('DANCU_CLIENT_ID');
const redirectUri = env('DANCU_REDIRECT_URI');
const jwk = JSON.parse(env('DANCU_CLIENT_JWK'));
const key = await crypto.subtle.importKey('jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);

// The test server speaks plain HTTP on 127.0.0.1; production issuers are https.
const config = await client.discovery(issuer, clientId, {}, client.PrivateKeyJwt(key), {
  execute: [client.allowInsecureRequests],
});
const dpop = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));

const verifier = client.randomPKCECodeVerifier();
const nonce = client.randomNonce();
const state = client.randomState();
const authUrl = await client.buildAuthorizationUrlWithPAR(
  config,
  {
    redirect_uri: redirectUri,
    scope: 'openid profile',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
    acr_values: 'urn:dancu:loa:1',
  },
  { DPoP: dpop },
);

// The browser: login page, then consent page, then the redirect back.
let cookie = '';
const browse = async (url, form) => {
  const resp = await fetch(url, {
    method: form ? 'POST' : 'GET',
    redirect: 'manual',
    headers: {
      ...(cookie ? { cookie } : {}),
      ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
    },
    body: form ? new URLSearchParams(form).toString() : undefined,
  });
  const set = resp.headers.get('set-cookie');
  if (set) cookie = set.split(';')[0];
  return resp;
};
const txOf = async (resp) => {
  const html = await resp.text();
  const m = html.match(/name="tx" value="([^"]+)"/);
  if (!m) throw new Error(`no form on the page (status ${resp.status}): ${html.slice(0, 300)}`);
  return m[1];
};
let resp = await browse(authUrl);
let tx = await txOf(resp);
resp = await browse(new URL('/authorize/login', issuer), {
  tx,
  id_number: env('DANCU_ID_NUMBER'),
  passcode: env('DANCU_PASSCODE'),
});
if (resp.status === 200) {
  tx = await txOf(resp);
  resp = await browse(new URL('/authorize/consent', issuer), { tx, decision: 'allow' });
}
const location = resp.headers.get('location');
if (!location) throw new Error(`expected a redirect, got ${resp.status}`);

const tokens = await client.authorizationCodeGrant(
  config,
  new URL(location),
  { pkceCodeVerifier: verifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true },
  undefined,
  { DPoP: dpop },
);
const claims = tokens.claims();
if (claims.acr !== 'urn:dancu:loa:1') throw new Error(`unexpected acr ${claims.acr}`);
if (tokens.token_type.toLowerCase() !== 'dpop') throw new Error(`token_type ${tokens.token_type}`);
const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP: dpop });

console.log(
  JSON.stringify({
    sub: claims.sub,
    iss: claims.iss,
    aud: claims.aud,
    acr: claims.acr,
    amr: claims.amr,
    token_type: tokens.token_type,
    name: info.name,
    refresh: typeof tokens.refresh_token === 'string',
  }),
);
