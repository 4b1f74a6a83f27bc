"""The NIM proxy: served models (C8, M4), embeddings (§4.6) and chat completions."""

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from .errors import NmpProtocolError
from .http import Call, HostCaller, read
from .models import ChatCompletion, EmbeddingList, ModelList

DEFAULT_EMBEDDING_MODEL = "nvidia/llama-3.2-nv-embedqa-1b-v2"


def openai_base_url(url: str) -> str:
    """`http://host:port` -> `http://host:port/v1`; a URL with a path is kept as given (an
    OpenAI-compatible endpoint's base, e.g. `https://integrate.api.nvidia.com/v1`)."""
    url = url.rstrip("/")
    return url if urlsplit(url).path else f"{url}/v1"


class NimProxy:
    """The NIM proxy's OpenAI-compatible calls. ``prefix`` is where they live below the host's
    base URL: ``/v1`` for the NIM proxy host, nothing for a base that already ends in it."""

    def __init__(self, nim: HostCaller, prefix: str = "/v1") -> None:
        self._http = nim
        self._prefix = prefix

    async def list_models(self) -> ModelList:
        """C8/M4: GET /v1/models; a model is synced once its id is in ``data[].id``."""
        return read(await self._http.send(Call("GET", f"{self._prefix}/models")), ModelList)

    async def embeddings(
        self,
        texts: Sequence[str],
        *,
        model: str = DEFAULT_EMBEDDING_MODEL,
        input_type: str = "query",
    ) -> list[list[float]]:
        """POST /v1/embeddings; one vector per text, in input order."""
        body = {"model": model, "input": list(texts), "input_type": input_type}
        call = Call(
            "POST", f"{self._prefix}/embeddings", json=body, headers={"Accept": "application/json"}
        )
        vectors = [item.embedding for item in read(await self._http.send(call), EmbeddingList).data]
        if len(vectors) != len(texts):
            raise NmpProtocolError(f"asked {len(texts)} embeddings, got {len(vectors)}")
        return vectors

    async def chat_completions(
        self, model: str, messages: Sequence[Mapping[str, object]], **options: object
    ) -> ChatCompletion:
        """POST /v1/chat/completions (OpenAI format). ``options`` go into the body as given
        (tools, tool_choice, temperature, max_tokens ...)."""
        body = {**options, "model": model, "messages": list(messages)}
        return read(
            await self._http.send(Call("POST", f"{self._prefix}/chat/completions", json=body)),
            ChatCompletion,
        )
