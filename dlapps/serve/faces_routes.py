"""The faces routes of `dlapps serve`: embed, verify, identify, and a gallery of subjects shaped like CompreFace's
(subjects listed, added, renamed, removed; faces added to and removed from a subject).

The gallery is the SQLite file of `dlapps faces enroll` (`--gallery`); each request opens its own connection and
every change is one transaction, taken in turn (`Registry.gallery_lock`), so concurrent enrolments lose nothing and a
killed server loses no committed one. Subject names are data, never file paths.
"""

from dlapps.gallery import normalise_name
from dlapps.serve.app import form_body, png_data_url, work
from dlapps.serve.inputs import RequestError, flag, need, number, read_fields

MAX_NAME = 200


def subject_name(name):
    """A subject's name as the routes take it: NFC, trimmed, at most 200 characters, no "/" (it would have no URL).

    Raises:
        RequestError: 422 naming the problem.
    """
    try:
        name = normalise_name(name)
    except ValueError as error:
        raise RequestError(422, str(error)) from None
    if "/" in name or len(name) > MAX_NAME:
        raise RequestError(422, f"a subject's name has at most {MAX_NAME} characters and no '/'; received "
                                f"{name[:60]!r}{'...' if len(name) > 60 else ''}")  # fmt: skip
    return name


def add_routes(app, registry):
    from fastapi import Request

    def faces_turn():
        return registry.need("faces")

    @app.post("/v1/faces/embed", openapi_extra=form_body(
        image=("file", "the photo"), all_faces=("boolean", "every face, not only the largest")))  # fmt: skip
    async def embed(request: Request):
        """The 128-D unit embedding of the largest face (every face with `all_faces`), with its box."""
        fields = await read_fields(request, ["image"])
        image = need(fields, "image")

        def run():
            with faces_turn() as verifier:
                found = verifier.faces(image, flag(fields, "all_faces"))
            return {"faces": [{"box": [round(float(v), 1) for v in face.box], "embedding": embedding.tolist()}
                              for face, embedding in found]}  # fmt: skip

        return await work(run)

    @app.post("/v1/faces/verify", openapi_extra=form_body(
        image_a=("file", "the first photo"), image_b=("file", "the second photo"),
        chips=("boolean", "add the two aligned face chips the network saw (PNG data URLs)")))  # fmt: skip
    async def verify(request: Request):
        """Are the largest faces of two photos the same person: distance, threshold, verdict and its confidence."""
        fields = await read_fields(request, ["image_a", "image_b"])
        image_a, image_b = need(fields, "image_a"), need(fields, "image_b")

        def run():
            with faces_turn() as verifier:
                return verifier.verify(image_a, image_b)

        result = await work(run)
        record = result.to_dict()
        if flag(fields, "chips"):
            record["chips"] = [png_data_url(chip) for chip in result.chips]
        return record

    @app.post("/v1/faces/identify", openapi_extra=form_body(
        image=("file", "the photo"), top_k=("integer", "closest subjects to list"),
        all_faces=("boolean", "every face, not only the largest")))  # fmt: skip
    async def identify(request: Request):
        """Who each face is against the gallery: a subject's name, or "unknown" above the open-set threshold."""
        fields = await read_fields(request, ["image"])
        image = need(fields, "image")
        top_k = number(fields, "top_k", int, 3, 1, 100)

        def run():
            with faces_turn() as verifier:
                gallery = registry.gallery()
                try:
                    found = verifier.identify(image, gallery, top_k=top_k, all_faces=flag(fields, "all_faces"))
                finally:
                    gallery.close()
            return {"faces": [result.to_dict() for result in found]}

        return await work(run)

    def with_gallery(function, create=False):
        """Run function(gallery) in turn with every other change, on a connection of its own."""

        def run():
            with registry.gallery_lock:
                gallery = registry.gallery(create=create)
                try:
                    return function(gallery)
                finally:
                    gallery.close()

        return work(run)

    def subjects_of(gallery):
        return [{"subject": name, "faces": count} for name, count in gallery.people()]

    @app.get("/v1/faces/subjects")
    async def list_subjects():
        """The enrolled subjects and how many faces each has."""
        if not registry.gallery_path.is_file():
            registry.need("faces")
            return {"subjects": []}
        return {"subjects": await with_gallery(subjects_of)}

    @app.post("/v1/faces/subjects", status_code=201, openapi_extra=form_body(
        subject=("string", "the person's name"), image=("file", "optional: a first photo of them")))  # fmt: skip
    async def add_subject(request: Request):
        """Add a subject (409 if the name is taken), optionally with a first photo."""
        fields = await read_fields(request, ["image"])
        name = subject_name(need(fields, "subject"))

        def add(gallery):
            if gallery.has(name):
                raise RequestError(409, f"subject {name!r} already exists")
            if fields.get("image"):
                return _enroll(registry, gallery, name, fields["image"])
            gallery.add(name)
            return {"subject": normalise_name(name), "faces": 0}

        return await with_gallery(add, create=True)

    @app.put("/v1/faces/subjects/{subject}", openapi_extra=form_body(subject=("string", "the new name")))
    async def rename_subject(subject: str, request: Request):
        """Rename a subject, keeping their faces (409 if the new name is another subject's)."""
        fields = await read_fields(request)
        new_name = subject_name(need(fields, "subject"))

        def rename(gallery):
            try:
                return {"subject": gallery.rename(subject, new_name), "faces": gallery.count(new_name)}
            except KeyError:
                raise RequestError(404, f"no subject {subject!r}") from None
            except ValueError as error:
                raise RequestError(409, str(error)) from None

        return await with_gallery(rename)

    @app.delete("/v1/faces/subjects/{subject}")
    async def delete_subject(subject: str):
        """Remove a subject and all their faces."""

        def remove(gallery):
            if not gallery.remove(subject):
                raise RequestError(404, f"no subject {subject!r}")
            return {"deleted": subject}

        return await with_gallery(remove)

    @app.get("/v1/faces/subjects/{subject}/faces")
    async def list_faces(subject: str):
        """A subject's stored faces: their ids and sources."""

        def faces(gallery):
            try:
                stored = gallery.faces(subject)
            except KeyError:
                raise RequestError(404, f"no subject {subject!r}") from None
            return {"subject": subject, "faces": [{"face_id": i, "source": s} for i, s in stored]}

        return await with_gallery(faces)

    @app.post("/v1/faces/subjects/{subject}/faces", status_code=201,
              openapi_extra=form_body(image=("file", "a photo of the subject (its largest face)")))  # fmt: skip
    async def add_face(subject: str, request: Request):
        """Add a photo's largest face to a subject (the subject is created if new)."""
        fields = await read_fields(request, ["image"])
        image = need(fields, "image")
        name = subject_name(subject)
        return await with_gallery(lambda gallery: _enroll(registry, gallery, name, image), create=True)

    @app.delete("/v1/faces/subjects/{subject}/faces/{face_id}")
    async def delete_face(subject: str, face_id: int):
        """Remove one stored face of a subject."""

        def remove(gallery):
            if not gallery.remove_face(subject, face_id):
                raise RequestError(404, f"subject {subject!r} has no face {face_id}")
            return {"deleted": face_id, "subject": subject, "faces": gallery.count(subject)}

        return await with_gallery(remove)


def _enroll(registry, gallery, name, image):
    """Enroll one photo's largest face (the caller holds the gallery's turn); the record of the new face."""
    skipped = []
    with registry.need("faces") as verifier:
        count = verifier.enroll(gallery, name, [image], skipped=skipped)
    stored = normalise_name(name)
    face_id = max(face_id for face_id, _ in gallery.faces(stored))
    return {"subject": stored, "face_id": face_id, "faces": count}
