"""The NIM proxy: served models (C8, M4), embeddings (§4.6) and chat completions."""

from collections.abc import Mapping, Sequence

from .errors import NmpProtocolError
from .http import Call, HostCaller, read
from .models import ChatCompletion, EmbeddingList, ModelList

DEFAULT_EMBEDDING_MODEL = "nvidia/llama-3.2-nv-embedqa-1b-v2"


class NimProxy:
    def __init__(self, nim: HostCaller) -> None:
        self._http = nim

    async def list_models(self) -> ModelList:
        """C8/M4: GET /v1/models; a model is synced once its id is in ``data[].id``."""
        return read(await self._http.send(Call("GET", "/v1/models")), ModelList)

    async def embeddings(
        self,
        texts: Sequence[str],
        *,
        model: str = DEFAULT_EMBEDDING_MODEL,
        input_type: str = "query",
    ) -> list[list[float]]:
        """POST /v1/embeddings; one vector per text, in input order."""
        body = {"model": model, "input": list(texts), "input_type": input_type}
        call = Call("POST", "/v1/embeddings", json=body, headers={"Accept": "application/json"})
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
            await self._http.send(Call("POST", "/v1/chat/completions", json=body)), ChatCompletion
        )
