DOCUMENTS_DB = "documents"
DOCUMENT_MODELS = {("ops", "document")}


class DocumentsRouter:
    """Document models live only on the `documents` alias; everything else only on `default`."""

    def _is_document(self, app_label, model_name) -> bool:
        return (app_label, (model_name or "").lower()) in DOCUMENT_MODELS

    def db_for_read(self, model, **hints):
        return DOCUMENTS_DB if self._is_document(model._meta.app_label, model._meta.model_name) else "default"

    db_for_write = db_for_read

    def allow_relation(self, obj1, obj2, **hints):
        # _meta, not type(): request.user is a lazy proxy whose type is not the model.
        return self.db_for_read(obj1) == self.db_for_read(obj2)

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if model_name is None:
            # RunPython/RunSQL without a model: run them on the relational DB only.
            return db == "default"
        return (db == DOCUMENTS_DB) == self._is_document(app_label, model_name)
