// The Message field: Enter sends, Shift+Enter starts a new line, and a counter shows
// near the length limit. Nothing is ever cut: a text over the limit is refused whole.

// The counter shows once the text is this close to the limit.
const COUNT_FROM_FRACTION = 0.9;
const numbers = new Intl.NumberFormat();

export class Composer {
  // onSubmit() when the person presses Enter (or the Send button submits the form).
  constructor(field, counter, { maxChars, onSubmit }) {
    this.field = field;
    this.counter = counter;
    this.maxChars = maxChars;
    field.addEventListener("keydown", (event) => {
      if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
      event.preventDefault();
      onSubmit();
    });
    field.addEventListener("input", () => this.update());
  }

  get value() {
    return this.field.value;
  }

  set value(text) {
    this.field.value = text;
    this.update();
  }

  // Characters as the server counts them (code points, not UTF-16 units).
  get length() {
    return [...this.field.value].length;
  }

  get tooLong() {
    return this.length > this.maxChars;
  }

  tooLongMessage() {
    const over = numbers.format(this.length - this.maxChars);
    const limit = numbers.format(this.maxChars);
    return (
      `Too long to send: ${over} characters over the limit of ${limit}. ` +
      "Nothing was cut; shorten it and send again."
    );
  }

  focus() {
    this.field.focus();
  }

  update() {
    const length = this.length;
    const show = length >= this.maxChars * COUNT_FROM_FRACTION;
    this.counter.hidden = !show;
    const count = `${numbers.format(length)} / ${numbers.format(this.maxChars)}`;
    this.counter.textContent = show ? count : "";
    this.counter.classList.toggle("over", length > this.maxChars);
    this.field.setAttribute("aria-invalid", String(length > this.maxChars));
  }
}
