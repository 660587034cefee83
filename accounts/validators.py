"""Password rules beyond Django's own validators (AUTH_PASSWORD_VALIDATORS)."""

from django.core.exceptions import ValidationError


class RepetitivePasswordValidator:
    """Refuses a password made of fewer than `min_distinct` different characters, whitespace not
    counted: Django's validators took eight spaces, or "zzzzzzzzzzzz", which no list of common
    passwords holds and any guesser tries first."""

    def __init__(self, min_distinct: int = 4):
        self.min_distinct = min_distinct

    def validate(self, password: str, user=None) -> None:
        if len({c for c in password if not c.isspace()}) < self.min_distinct:
            raise ValidationError(
                f"This password repeats too few characters: use at least {self.min_distinct} different ones "
                "(spaces not counted).", code="password_too_repetitive")

    def get_help_text(self) -> str:
        return f"Your password must use at least {self.min_distinct} different characters (spaces not counted)."
