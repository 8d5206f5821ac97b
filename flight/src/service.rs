//! The Flight SQL service: what real clients (ADBC, the JDBC driver, pyarrow) call.
//!
//! | RPC                                            | answer                                            |
//! |------------------------------------------------|---------------------------------------------------|
//! | Handshake                                      | Basic auth → bearer token (when a token is set)   |
//! | GetFlightInfo(CommandStatementQuery)           | runs the query on a snapshot, keeps the result    |
//! | DoGet(TicketStatementQuery)                    | streams the kept result once                      |
//! | CreatePreparedStatement / Close                | handle = the query text; no parameters            |
//! | GetFlightInfo / DoGet(CommandPreparedStatement)| as a statement                                    |
//! | DoPut(CommandPreparedStatementQuery)           | accepts an empty parameter set only               |
//! | GetCatalogs, GetDbSchemas, GetTables, GetTableTypes, GetSqlInfo | the live tables, read-only SQL info |
//! | anything else                                  | UNIMPLEMENTED, saying what is not supported       |
//!
//! Results are computed when the client asks for the FlightInfo, so the row count it reports
//! and the rows DoGet streams are the same snapshot.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    Any, CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandPreparedStatementQuery, CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc,
    Ticket,
};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use datafusion::error::DataFusionError;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status, Streaming};

use crate::governor::{Governor, TimedOut};
use crate::query::{CATALOG, QueryEngine, QueryResult, SCHEMA};

/// Results waiting for their DoGet are dropped after this long.
const RESULT_TTL: Duration = Duration::from_secs(120);
/// At most this many results wait for their DoGet; the oldest go first.
const MAX_PENDING_RESULTS: usize = 64;
/// Results waiting for their DoGet may hold at most this share of the memory all queries may
/// use (`memory_total_bytes / PENDING_SHARE`); the oldest go first, so running queries always
/// keep the rest.
const PENDING_SHARE: usize = 2;

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// The Flight SQL service over one live catalog.
#[derive(Clone)]
pub struct StreamsqlFlightService {
    engine: QueryEngine,
    token: Option<Arc<str>>,
    pending: Arc<Mutex<Pending>>,
    sql_info: Arc<SqlInfoData>,
}

#[derive(Default)]
struct Pending {
    next: u64,
    results: BTreeMap<u64, (Instant, QueryResult)>,
}

fn sql_info() -> Result<SqlInfoData, Status> {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "streamsql");
    builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    builder.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    builder.append(SqlInfo::FlightSqlServerReadOnly, true);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    builder.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
    builder.append(SqlInfo::FlightSqlServerCancel, false);
    builder.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    builder.build().map_err(|e| Status::internal(format!("building SQL info: {e}")))
}

impl StreamsqlFlightService {
    /// A service answering queries with `engine`; with `token`, every call must carry it (as a
    /// bearer token, or as the password of Basic auth).
    pub fn new(engine: QueryEngine, token: Option<String>) -> Result<Self, Status> {
        Ok(Self {
            engine,
            token: token.map(Arc::from),
            pending: Arc::new(Mutex::new(Pending::default())),
            sql_info: Arc::new(sql_info()?),
        })
    }

    /// The queries' governor, to cancel them when the server stops.
    pub fn governor(&self) -> Arc<Governor> {
        self.engine.governor().clone()
    }

    fn authorize(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(token) = &self.token else { return Ok(()) };
        let header = metadata.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if let Some(bearer) = header.strip_prefix("Bearer ")
            && bearer == token.as_ref()
        {
            return Ok(());
        }
        if let Some((_, password)) = basic_credentials(header)
            && password == token.as_ref()
        {
            return Ok(());
        }
        Err(Status::unauthenticated(
            "this server needs a token: send 'authorization: Bearer <token>', or Basic auth with the token as password",
        ))
    }

    async fn execute(&self, sql: &str) -> Result<QueryResult, Status> {
        let result = self.engine.run(sql).await.map_err(|e| self.query_error(e))?;
        tracing::debug!(sql, rows = result.num_rows(), "flight sql query");
        Ok(result)
    }

    fn query_error(&self, error: DataFusionError) -> Status {
        let message = error.strip_backtrace();
        let tables: Vec<String> = self.engine.catalog().tables().into_iter().map(|(name, _)| name).collect();
        if let DataFusionError::External(inner) = error.find_root()
            && let Some(timeout) = inner.downcast_ref::<TimedOut>()
        {
            return Status::deadline_exceeded(timeout.to_string());
        }
        match error.find_root() {
            DataFusionError::ResourcesExhausted(_) => Status::resource_exhausted(message),
            DataFusionError::Plan(_) | DataFusionError::SQL(..) | DataFusionError::SchemaError(..) => {
                let hint = if message.contains("not found") {
                    if tables.is_empty() {
                        "; there are no live tables yet".to_string()
                    } else {
                        format!("; live tables: {}", tables.join(", "))
                    }
                } else {
                    String::new()
                };
                Status::invalid_argument(format!("{message}{hint}"))
            }
            DataFusionError::NotImplemented(_) => Status::unimplemented(message),
            _ => Status::internal(message),
        }
    }

    /// Keeps a result for its DoGet and describes it.
    fn flight_info(&self, result: QueryResult, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
        let rows = result.num_rows() as i64;
        let bytes = result.batches.iter().map(|b| b.get_array_memory_size() as i64).sum();
        let schema = result.schema.clone();
        let handle = {
            let mut pending = self.pending.lock().map_err(|_| Status::internal("result store poisoned"))?;
            let now = Instant::now();
            pending.results.retain(|_, (at, _)| now.duration_since(*at) < RESULT_TTL);
            let budget = self.engine.governor().limits().memory_total_bytes / PENDING_SHARE;
            let mut held: usize = pending.results.values().map(|(_, r)| r.bytes()).sum::<usize>() + result.bytes();
            while pending.results.len() >= MAX_PENDING_RESULTS || (held > budget && !pending.results.is_empty()) {
                if let Some((_, (_, evicted))) = pending.results.pop_first() {
                    held -= evicted.bytes();
                }
            }
            pending.next += 1;
            let handle = pending.next;
            pending.results.insert(handle, (now, result));
            handle
        };
        let ticket = TicketStatementQuery { statement_handle: handle.to_be_bytes().to_vec().into() };
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        Ok(FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(format!("encoding the schema: {e}")))?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor)
            .with_total_records(rows)
            .with_total_bytes(bytes))
    }

    fn take_result(&self, handle: &[u8]) -> Result<QueryResult, Status> {
        let handle = <[u8; 8]>::try_from(handle)
            .map(u64::from_be_bytes)
            .map_err(|_| Status::invalid_argument("not a statement handle of this server"))?;
        let mut pending = self.pending.lock().map_err(|_| Status::internal("result store poisoned"))?;
        pending
            .results
            .remove(&handle)
            .map(|(_, result)| result)
            .ok_or_else(|| Status::not_found("this result was already fetched or has expired; run the query again"))
    }

    /// A FlightInfo whose ticket is the command itself (metadata calls, answered at DoGet).
    fn command_info(
        &self,
        command: impl ProstMessageExt,
        schema: &Schema,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(command.as_any().encode_to_vec()));
        Ok(FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(format!("encoding the schema: {e}")))?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor))
    }
}

fn basic_credentials(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?;
    // Clients differ on padding (the Go ADBC driver sends none), so accept either.
    let engine = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let decoded = engine.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> DoGetStream {
    let batches = futures::stream::iter(batches.into_iter().map(Ok::<_, FlightError>));
    Box::pin(FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(Status::from))
}

/// Streams a result; its memory stays reserved until the stream is done or dropped (the client
/// went away).
fn result_stream(result: QueryResult) -> DoGetStream {
    let (schema, batches, memory) = result.into_parts();
    let batches = futures::stream::iter(batches).map(move |batch| {
        let _reserved = &memory;
        Ok::<_, FlightError>(batch)
    });
    Box::pin(FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(Status::from))
}

fn one_batch(batch: Result<RecordBatch, FlightError>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(format!("building a metadata result: {e}")))?;
    Ok(Response::new(stream(batch.schema(), vec![batch])))
}

fn handle_text(handle: &[u8]) -> Result<String, Status> {
    String::from_utf8(handle.to_vec()).map_err(|_| Status::invalid_argument("not a prepared statement of this server"))
}

#[tonic::async_trait]
impl FlightSqlService for StreamsqlFlightService {
    type FlightService = StreamsqlFlightService;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        self.authorize(request.metadata())?;
        let reply = HandshakeResponse { protocol_version: 0, payload: Default::default() };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        if let Some(token) = &self.token {
            let value = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|_| Status::internal("the token cannot be sent as a header"))?;
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let result = self.execute(&query.query).await?;
        Ok(Response::new(self.flight_info(result, request.into_inner())?))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let result = self.take_result(&ticket.statement_handle)?;
        Ok(Response::new(result_stream(result)))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        self.authorize(request.metadata())?;
        let schema = self.engine.schema(&query.query).await.map_err(|e| self.query_error(e))?;
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &Default::default())
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(format!("encoding the schema: {e}")))?;
        // The handle is the query itself: nothing to keep on the server, nothing to leak.
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema,
            parameter_schema: Default::default(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        self.authorize(request.metadata())
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let result = self.execute(&handle_text(&cmd.prepared_statement_handle)?).await?;
        Ok(Response::new(self.flight_info(result, request.into_inner())?))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let result = self.execute(&handle_text(&query.prepared_statement_handle)?).await?;
        Ok(Response::new(result_stream(result)))
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        self.authorize(request.metadata())?;
        let data = request.into_inner().map_err(FlightError::from);
        let mut batches = FlightRecordBatchStream::new_from_flight_data(data);
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| Status::invalid_argument(format!("reading parameters: {e}")))?;
            if batch.num_columns() > 0 && batch.num_rows() > 0 {
                return Err(Status::unimplemented("query parameters are not supported; write values into the SQL"));
            }
        }
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(query.prepared_statement_handle) })
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let schema = query.into_builder().schema();
        Ok(Response::new(self.command_info(query, &schema, request.into_inner())?))
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        one_batch(builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(self.command_info(query, &schema, request.into_inner())?))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append(CATALOG, SCHEMA);
        one_batch(builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let schema = query.clone().into_builder().schema();
        Ok(Response::new(self.command_info(query, &schema, request.into_inner())?))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let mut builder = query.into_builder();
        for (name, schema) in self.engine.catalog().tables() {
            builder
                .append(CATALOG, SCHEMA, name, "TABLE", &schema)
                .map_err(|e| Status::internal(format!("listing tables: {e}")))?;
        }
        one_batch(builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let schema = Schema::new(vec![Field::new("table_type", DataType::Utf8, false)]);
        Ok(Response::new(self.command_info(query, &schema, request.into_inner())?))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        let mut builder = query.into_builder();
        builder.append("TABLE");
        one_batch(builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.authorize(request.metadata())?;
        let schema = query.clone().into_builder(&self.sql_info).schema();
        Ok(Response::new(self.command_info(query, &schema, request.into_inner())?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.authorize(request.metadata())?;
        one_batch(query.into_builder(&self.sql_info).build())
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Err(Status::unimplemented(format!("streamsql does not answer {} tickets", message.type_url)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
