from .entrypoint import Api, api
from .errors import ApiError, Conflict, NotFound, Unprocessable, error_response, json_response

__all__ = ["Api", "api", "ApiError", "Conflict", "NotFound", "Unprocessable", "error_response", "json_response"]
