// The login form: "Log in", or "Register" then log in; errors explained in words.
import { ApiError, currentUser, logIn, register } from "./api.js";

export class LoginView {
  constructor({ onLoggedIn }) {
    this.view = document.getElementById("login-view");
    this.form = document.getElementById("login-form");
    this.notice = document.getElementById("login-notice");
    this.username = document.getElementById("username");
    this.password = document.getElementById("password");
    this.onLoggedIn = onLoggedIn;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit(event.submitter?.value ?? "log-in");
    });
  }

  show(reason = "") {
    this.view.hidden = false;
    this.notice.textContent = reason;
    this.password.value = "";
    this.username.focus();
  }

  hide() {
    this.view.hidden = true;
    this.notice.textContent = "";
  }

  async submit(action) {
    const username = this.username.value.trim();
    const password = this.password.value;
    this.setBusy(true);
    try {
      if (action === "register") await register(username, password);
      const token = await logIn(username, password);
      const me = await currentUser(token);
      this.password.value = "";
      this.onLoggedIn({ token, username: me.username });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      this.notice.textContent = explain(error);
    } finally {
      this.setBusy(false);
    }
  }

  setBusy(busy) {
    this.form.setAttribute("aria-busy", String(busy));
    for (const button of this.form.querySelectorAll("button")) button.disabled = busy;
  }
}

function explain(error) {
  switch (error.status) {
    case 0:
      return "The server cannot be reached. Check your connection and try again.";
    case 401:
      return "Incorrect username or password.";
    case 409:
      return "That username is taken: choose another, or log in.";
    case 422:
      return "Usernames are 3–32 letters, digits, _ . or -; passwords at least 8 characters.";
    case 429:
      return "Too many attempts: wait a moment and try again.";
    default:
      return `The server could not do that (${error.status}): ${error.message}`;
  }
}
