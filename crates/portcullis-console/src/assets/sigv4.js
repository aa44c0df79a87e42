// AWS Signature Version 4 in the browser, with WebCrypto only (HMAC-SHA256,
// SHA-256). The secret access key is used once, in `signingKeyFor`, to derive
// the day's signing key (HMAC chain: date, region, service, "aws4_request");
// that key is imported as a non-extractable CryptoKey, so nothing in the page
// can read it back, and the secret is not kept.

const encoder = new TextEncoder();

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(text) {
  return hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

async function hmacRaw(keyBytes, message) {
  const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(message)));
}

// RFC 3986 percent-encoding of everything but the unreserved characters, as
// SigV4 wants (encodeURIComponent leaves !'()* alone).
export function uriEncode(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

// `20261207T013000Z` and `20261207` for a Date.
export function amzDate(now) {
  const iso = now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  return { dateTime: iso, date: iso.slice(0, 8) };
}

// The query string as it is both sent and signed: pairs encoded, sorted by
// key then value.
export function canonicalQuery(params) {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [uriEncode(k), uriEncode(String(v))])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => k + "=" + v)
    .join("&");
}

// The signing key of one day, region and service, as a non-extractable
// HMAC CryptoKey.
export async function signingKeyFor(secretAccessKey, date, region, service) {
  const kDate = await hmacRaw(encoder.encode("AWS4" + secretAccessKey), date);
  const kRegion = await hmacRaw(kDate, region);
  const kService = await hmacRaw(kRegion, service);
  const kSigning = await hmacRaw(kService, "aws4_request");
  const key = await crypto.subtle.importKey("raw", kSigning, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  kDate.fill(0);
  kRegion.fill(0);
  kService.fill(0);
  kSigning.fill(0);
  return key;
}

// Signs one request. `path` is the path as sent (each segment already
// percent-encoded); the canonical URI encodes it once more, as every AWS
// service but S3 does. Returns the headers to send (Host is the browser's own
// and is signed as `host`).
export async function sign({ method, host, path, query, body, contentType, credentials, now }) {
  const { dateTime, date } = amzDate(now);
  if (date !== credentials.date) {
    throw new Error("The signing key was made for " + credentials.date + " (UTC); sign in again for today.");
  }
  const payloadHash = await sha256Hex(body || "");
  const headers = { host, "x-amz-date": dateTime, "x-amz-content-sha256": payloadHash };
  if (contentType) headers["content-type"] = contentType;
  if (credentials.sessionToken) headers["x-amz-security-token"] = credentials.sessionToken;
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => n + ":" + String(headers[n]).trim() + "\n").join("");
  const signedHeaders = names.join(";");
  const canonicalUri = path.split("/").map(uriEncode).join("/");
  const canonicalRequest = [method, canonicalUri, query, canonicalHeaders, signedHeaders, payloadHash].join("\n");
  const scope = date + "/" + credentials.region + "/" + credentials.service + "/aws4_request";
  const stringToSign = ["AWS4-HMAC-SHA256", dateTime, scope, await sha256Hex(canonicalRequest)].join("\n");
  const signature = hex(await crypto.subtle.sign("HMAC", credentials.signingKey, encoder.encode(stringToSign)));
  const authorization =
    "AWS4-HMAC-SHA256 Credential=" + credentials.accessKeyId + "/" + scope +
    ", SignedHeaders=" + signedHeaders + ", Signature=" + signature;
  const sent = { "x-amz-date": dateTime, "x-amz-content-sha256": payloadHash, authorization };
  if (contentType) sent["content-type"] = contentType;
  if (credentials.sessionToken) sent["x-amz-security-token"] = credentials.sessionToken;
  return sent;
}
