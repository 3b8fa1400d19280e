// The HTTP API of API.md, as small functions that return JSON or throw ApiError.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status; // 0 when the server could not be reached at all
  }
}

async function request(path, { token, method = "GET", json, form } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: "no-store" });
  } catch {
    throw new ApiError(0, "The server cannot be reached.");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, describe(data?.detail));
  return data;
}

// `detail` is a sentence, or FastAPI's list of validation errors.
function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((error) => error.msg).join("; ");
  return "The server could not answer.";
}

export function register(username, password) {
  return request("/api/auth/register", { method: "POST", json: { username, password } });
}

export async function logIn(username, password) {
  const body = await request("/api/auth/token", { method: "POST", form: { username, password } });
  return body.access_token;
}

export function currentUser(token) {
  return request("/api/users/me", { token });
}

export function listRooms(token) {
  return request("/api/rooms", { token });
}

// A page of a room's history after a message id, oldest first: `{ messages: [...] }`.
export function messagesAfter(token, room, after, limit = 200) {
  const query = new URLSearchParams({ after: String(after), limit: String(limit) });
  return request(`/api/rooms/${encodeURIComponent(room)}/messages?${query}`, { token });
}

// The page of a room's history before a message id, oldest first: `{ messages: [...] }`.
export function messagesBefore(token, room, before, limit = 50) {
  const query = new URLSearchParams({ before: String(before), limit: String(limit) });
  return request(`/api/rooms/${encodeURIComponent(room)}/messages?${query}`, { token });
}
