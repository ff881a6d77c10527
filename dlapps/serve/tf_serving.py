"""TF Serving's REST shape on `dlapps serve`: `POST /v1/models/{name}:predict` with `{"instances": [{"b64": ...}]}`,
so clients written for TensorFlow Serving work unchanged; each prediction is the `predict --json` record."""

from dlapps.serve.app import png_data_url, work
from dlapps.serve.inputs import RequestError, read_fields


def add_routes(app, registry):
    from fastapi import Request

    @app.post("/v1/models/{target}")
    async def tf_serving_predict(target: str, request: Request):
        """TF Serving's REST shape: `POST /v1/models/NAME:predict` with `{"instances": [{"b64": ...}]}` (or
        `{"instances": [{"image": {"b64": ...}}]}`); answers `{"predictions": [record, ...]}`, one `predict --json`
        record per instance (style: the record with `image` as a PNG data URL)."""
        name, _, verb = target.partition(":")
        if verb != "predict":
            raise RequestError(404, f"unknown route {target!r}; use /v1/models/{name}:predict")
        if name not in registry.names():
            raise RequestError(404, f"no model {name!r} is loaded", f"loaded: {', '.join(registry.names())}")
        fields = await read_fields(request)
        instances = fields.get("instances")
        if not isinstance(instances, list) or not instances:
            raise RequestError(400, 'expected {"instances": [{"b64": ...}, ...]}')
        images = [read_fields_b64(instance, i) for i, instance in enumerate(instances)]

        def run():
            predictions = []
            for index, image in enumerate(images):
                try:
                    predictions.append(predict_one(registry, name, image))
                except ValueError as error:  # TF Serving answers a batch whole: the error names the instance
                    raise type(error)(f"instances[{index}]: {error}") from None
            return predictions

        return {"predictions": await work(run)}


def read_fields_b64(instance, index):
    """One TF Serving instance's image bytes (sniffed). Raises RequestError 400/415."""
    from dlapps.serve.inputs import _b64, sniff_image

    value = instance.get("image", instance) if isinstance(instance, dict) else instance
    data = _b64(value, f"instances[{index}]")
    sniff_image(data, f"instances[{index}]")
    return data


def predict_one(registry, name, image):
    """One image through the named model, as its `predict --json` record."""
    if name in registry.classifiers:
        with registry.classifiers[name] as classifier:
            return classifier.predict(image).to_dict()
    if name in ("detect", "faces"):
        with registry.need(name) as model:
            return model.predict(image).to_dict()
    with registry.style(name) as model:
        result = model.stylise(image)
    return {**result.to_dict(), "image": png_data_url(result.image)}
